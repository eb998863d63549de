/* fuzz-replay.c: a generic driver that feeds files (or every regular file in directories)
 * to a libFuzzer target's LLVMFuzzerTestOneInput(), so seed corpora run as plain tests
 * without clang/libFuzzer. Fails when no input was found. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REPLAY_MAX_INPUT (4 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
	uint8_t *buf;
	size_t len = 0;
	struct stat st;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size > REPLAY_MAX_INPUT) {
		fprintf(stderr, "fuzz-replay: cannot use %s: %s\n", path,
		        fd < 0 ? strerror(errno) : "too large or unreadable");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char *argv[])
{
	unsigned inputs = 0, errors = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "fuzz-replay: %s: %s\n", argv[i], strerror(errno));
			errors++;
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			struct dirent **list = NULL;
			int n = scandir(argv[i], &list, NULL, NULL);

			if (n < 0) {
				fprintf(stderr, "fuzz-replay: %s: %s\n", argv[i], strerror(errno));
				errors++;
				continue;
			}
			{
				char **names = calloc((size_t)n + 1, sizeof(char *));
				int m = 0;

				for (int j = 0; j < n; j++) {
					if (names && list[j]->d_name[0] != '.')
						names[m++] = strdup(list[j]->d_name);
					free(list[j]);
				}
				free(list);
				if (!names) {
					errors++;
					continue;
				}
				qsort(names, (size_t)m, sizeof(char *), name_cmp);
				for (int j = 0; j < m; j++) {
					char path[4096];
					struct stat est;

					if (!names[j])
						continue;
					snprintf(path, sizeof(path), "%s/%s", argv[i], names[j]);
					free(names[j]);
					if (stat(path, &est) < 0 || !S_ISREG(est.st_mode))
						continue;
					if (run_file(path) < 0)
						errors++;
					else
						inputs++;
				}
				free(names);
			}
		} else if (run_file(argv[i]) < 0)
			errors++;
		else
			inputs++;
	}
	fprintf(stderr, "fuzz-replay: %u inputs replayed, %u errors\n", inputs, errors);
	return errors || inputs == 0 ? 1 : 0;
}

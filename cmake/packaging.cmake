# packaging.cmake: the Debian package (CPack DEB). Build it from a tree configured with
# -DCMAKE_INSTALL_PREFIX=/usr (paths such as /etc/keyward are fixed at configure time):
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DKEYWARD_TESTS=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
# docs/packaging.md explains the maintainer scripts and every lintian finding.

set(KEYWARD_DEB_REVISION 1 CACHE STRING "Debian revision of the package")
set(KEYWARD_DEB_VERSION "${PROJECT_VERSION}-${KEYWARD_DEB_REVISION}")
set(_kw_deb ${PROJECT_SOURCE_DIR}/dist/deb)

# Debian wants a copyright file and a compressed changelog in /usr/share/doc/keyward.
configure_file(${_kw_deb}/changelog.in ${CMAKE_BINARY_DIR}/deb/changelog.Debian @ONLY)
add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz
  COMMAND gzip -9n -c ${CMAKE_BINARY_DIR}/deb/changelog.Debian > ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz
  DEPENDS ${CMAKE_BINARY_DIR}/deb/changelog.Debian
  COMMENT "Compressing changelog.Debian")
add_custom_target(keyward_deb_changelog ALL DEPENDS ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz)
install(FILES ${_kw_deb}/copyright ${CMAKE_BINARY_DIR}/deb/changelog.Debian.gz
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/keyward
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

install(FILES ${_kw_deb}/lintian-overrides RENAME keyward
  DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides
  PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME keyward)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "keyward")
set(CPACK_PACKAGE_CONTACT "keyward maintainers <keyward@example.org>")
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_SET_DESTDIR OFF)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "FIDO2 security key presence for privileged accounts")
# The body only: CPack puts the summary on the first line and indents the rest.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"keyward makes logins and elevations of privileged accounts depend on a FIDO2
security key that is present: a PAM module asks a small system daemon, which
talks to the key, checks the policy and writes a hash-chained audit trail.
Pulling the key out locks or ends the sessions and elevations it opened.

The PAM profiles are installed but not enabled: enroll keys first, run
keywardctl doctor, then pam-auth-update --enable keyward.")
set(CPACK_DEBIAN_PACKAGE_NAME keyward)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_RELEASE ${KEYWARD_DEB_REVISION})
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://keyward.example.org/")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# pam-auth-update (libpam-runtime), deb-systemd-helper (init-system-helpers), the bus,
# and udev: keywardd's removal watch listens to udevd's events.
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libpam-runtime (>= 1.0.1-6), init-system-helpers (>= 1.54~), dbus-system-bus | dbus, udev")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
# The example policy lands in /etc as a conffile (dpkg keeps the admin's edits).
file(WRITE ${CMAKE_BINARY_DIR}/deb/conffiles "${KEYWARD_SYSCONFDIR}/keyward.conf\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${_kw_deb}/postinst ${_kw_deb}/prerm ${_kw_deb}/postrm ${CMAKE_BINARY_DIR}/deb/conffiles)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
# Man pages are shipped gzip'ed (Debian policy 12.1), like dh_compress would.
set(CPACK_PRE_BUILD_SCRIPTS ${PROJECT_SOURCE_DIR}/cmake/deb-compress-man.cmake)

include(CPack)

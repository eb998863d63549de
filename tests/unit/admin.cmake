# tests/unit/admin.cmake: the admin helper's tests — systemd unit check, dist files,
# keywardctl doctor on fixture trees, man pages, the Debian package.
set(_kw_admin ${CMAKE_CURRENT_SOURCE_DIR}/admin)

find_program(SYSTEMD_ANALYZE_PROGRAM systemd-analyze)
if(NOT SYSTEMD_ANALYZE_PROGRAM)
  set(SYSTEMD_ANALYZE_PROGRAM systemd-analyze) # the test fails loudly, never skips
endif()
add_test(NAME dist.unit-verify
  COMMAND ${BASH_PROGRAM} ${_kw_admin}/unit-verify.sh
    ${CMAKE_BINARY_DIR}/dist/keywardd.service ${PROJECT_SOURCE_DIR}/docs 25)
set_tests_properties(dist.unit-verify PROPERTIES LABELS "unit;dist")

# keywardctl doctor on fixture trees (tests/unit/admin/doctor-test.sh builds them).
foreach(_case good sufficient optional no-ignore ignored-error keyonly before-password
    not-enabled no-session session-order pam-loop no-key no-key-tty bad-creds modes failmode-open policy-private policy-writable no-module bad-policy no-policy
    missing-files no-bus daemon-ok daemon-error
    daemon-audit-down sudo-no-account sudoers-good sudoers-bypass relative-config usage)
  add_test(NAME doctor.${_case}
    COMMAND ${BASH_PROGRAM} ${_kw_admin}/doctor-test.sh $<TARGET_FILE:keywardctl>
      ${KEYWARD_PAM_MODULE_DIR} ${_case})
  set_tests_properties(doctor.${_case} PROPERTIES LABELS "unit;doctor")
endforeach()

# One answer to "which services does the policy cover": doctor --root, report --root and the
# enrollment's services (policy explain without --service) on one fixture tree.
add_test(NAME doctor.coverage-services
  COMMAND ${BASH_PROGRAM} ${_kw_admin}/coverage-test.sh $<TARGET_FILE:keywardctl>)
set_tests_properties(doctor.coverage-services PROPERTIES LABELS "unit;doctor")

# pam-auth-update on the shipped profiles, in a private mount namespace.
add_test(NAME dist.pam-profiles
  COMMAND ${BASH_PROGRAM} ${_kw_admin}/pam-profile-test.sh ${PROJECT_SOURCE_DIR}/dist/pam-configs
    $<TARGET_FILE:keywardctl> ${PROJECT_SOURCE_DIR}/dist/deb)
set_tests_properties(dist.pam-profiles PROPERTIES LABELS "unit;dist;doctor")

# Man pages: mandoc lint (every docs/*.[0-9]) and options documented both ways.
add_test(NAME docs.mandoc-lint COMMAND ${BASH_PROGRAM} ${_kw_admin}/man-lint.sh ${PROJECT_SOURCE_DIR}/docs)
set_tests_properties(docs.mandoc-lint PROPERTIES LABELS "unit;docs")
add_test(NAME docs.options COMMAND ${BASH_PROGRAM} ${_kw_admin}/man-options.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(docs.options PROPERTIES LABELS "unit;docs")

# The Debian package: fresh /usr build, CPack DEB, file list, modes, maintainer scripts,
# lintian. Builds the whole tree again (about 20 s here): serial, generous timeout.
add_test(NAME package.deb
  COMMAND ${BASH_PROGRAM} ${_kw_admin}/package-test.sh ${PROJECT_SOURCE_DIR} ${KEYWARD_PAM_MODULE_DIR})
set_tests_properties(package.deb PROPERTIES LABELS "package" RUN_SERIAL TRUE TIMEOUT 900)

# udev rule: syntax and contract (no udevadm verify in systemd 252).
add_test(NAME dist.udev-rules
  COMMAND ${BASH_PROGRAM} ${_kw_admin}/udev-rules-check.sh ${PROJECT_SOURCE_DIR}/udev/70-keyward.rules)
set_tests_properties(dist.udev-rules PROPERTIES LABELS "unit;dist")

# A plain cmake installs where the docs say (/usr, /etc/keyward); other prefixes are errors.
add_test(NAME dist.cmake-prefix COMMAND ${BASH_PROGRAM} ${_kw_admin}/cmake-prefix-test.sh ${PROJECT_SOURCE_DIR})
set_tests_properties(dist.cmake-prefix PROPERTIES LABELS "unit;dist")

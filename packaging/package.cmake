# Installation layout and the Debian package: `cpack -G DEB` in build/release
# (docs/operations.md, "Install"). The package carries the daemon, the client, the unit
# files, the default config (a conffile), man pages and docs; not pi itself (see
# docs/operations.md for why): /usr/share/pi-server/install-agent installs the pinned pi.
include(GNUInstallDirs)
install(TARGETS pi-server pi-server-client RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(FILES packaging/pi-server.service packaging/pi-server.socket DESTINATION lib/systemd/system)
install(FILES packaging/pi-server.toml DESTINATION /etc/pi-server RENAME config.toml)
install(PROGRAMS packaging/install-agent DESTINATION ${CMAKE_INSTALL_DATADIR}/pi-server)
install(FILES README.md docs/configuration.md docs/operations.md docs/clients.md docs/protocol.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/pi-server)

# Man pages from --help (help2man), so they cannot drift from the flags.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  foreach(program pi-server pi-server-client)
    add_custom_command(OUTPUT ${program}.1
      COMMAND ${HELP2MAN} --no-info --no-discard-stderr --version-string=${PROJECT_VERSION}
              --name=${program} --output=${program}.1 $<TARGET_FILE:${program}>
      DEPENDS ${program} VERBATIM)
    install(FILES ${CMAKE_CURRENT_BINARY_DIR}/${program}.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
    list(APPEND PI_SERVER_MAN_PAGES ${program}.1)
  endforeach()
  add_custom_target(man-pages ALL DEPENDS ${PI_SERVER_MAN_PAGES})
else()
  message(WARNING "help2man not found: the package will have no man pages (scripts/setup installs it)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME pi-server)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "pi-server maintainers <pi-server@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "serves pi coding-agent sessions over WebSocket and stdio")
set(CPACK_PACKAGE_DESCRIPTION "pi-server runs many sessions of the pi coding agent, each its own process,
and serves them to editors and scripts over WebSocket and stdio. Includes
pi-server-client, hardened systemd units and a default config. pi itself is
installed by /usr/share/pi-server/install-agent (npm).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "npm")
# gzip: the CI test builds the package on every run; xz would take longer for little gain.
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${PROJECT_SOURCE_DIR}/packaging/conffiles ${PROJECT_SOURCE_DIR}/packaging/postinst
  ${PROJECT_SOURCE_DIR}/packaging/prerm ${PROJECT_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
# Only the two programs and their files, not the tests and benchmarks.
set(CPACK_COMPONENTS_ALL Unspecified)
include(CPack)

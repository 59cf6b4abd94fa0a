# SPDX-License-Identifier: Apache-2.0
# The install layout beyond the executables, and the Debian package (CPack DEB).
#
#   cmake --install BUILD            /usr/bin/sluice, sluice-sim, sluice-verify; /etc/sluice/sluice.toml;
#                                    the systemd unit and sysusers file (systemd/CMakeLists.txt);
#                                    /usr/share/doc/sluice; /usr/share/sluice/monitoring; the manual
#                                    pages sluice(1) and sluice.toml(5) (cmake/ManPages.cmake); the
#                                    bash completion
#   scripts/package-deb.sh           build/.../sluice_<version>_<arch>.deb (runs cpack)
#
# Included from the top-level CMakeLists.txt after every target exists. Tests, benchmarks and fuzzers
# have no install() rules, so neither `cmake --install` nor the package ever contains them.

# sluice is a system daemon whose unit, configuration and state have fixed system paths, so a plain
# `cmake --install` puts it where the package does: /usr/bin, /etc/sluice (GNUInstallDirs maps the
# /usr prefix's sysconfdir to /etc). -DCMAKE_INSTALL_PREFIX=... still chooses another place.
if(CMAKE_INSTALL_PREFIX_INITIALIZED_TO_DEFAULT)
  set(CMAKE_INSTALL_PREFIX /usr CACHE PATH "Install prefix" FORCE)
endif()
include(GNUInstallDirs)

set(SLUICE_CONFIG_DIR "${CMAKE_INSTALL_FULL_SYSCONFDIR}/sluice")
set(SLUICE_CONFIG_FILE "${SLUICE_CONFIG_DIR}/sluice.toml")
# The unit's StateDirectory= and the default storage.path.
set(SLUICE_STATE_DIR "${CMAKE_INSTALL_FULL_LOCALSTATEDIR}/lib/sluice")

add_subdirectory(${PROJECT_SOURCE_DIR}/systemd ${PROJECT_BINARY_DIR}/systemd)

# The commented example is the installed default: it passes `sluice check-config` as it is (the
# gateway id defaults to the host name, brokers to localhost), which scripts/package-test.sh proves.
install(FILES ${PROJECT_SOURCE_DIR}/gateway/sluice.example.toml DESTINATION ${SLUICE_CONFIG_DIR}
        RENAME sluice.toml PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
file(GLOB _sluice_docs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${_sluice_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES ${PROJECT_SOURCE_DIR}/systemd/deb/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})

# Debian wants a compressed changelog in every binary package (changelog.gz: the version has no
# Debian revision, so the package is a native one). Written at configure time from the project
# version; gzip -n leaves out the time stamp so that the package is reproducible.
set(_sluice_changelog ${PROJECT_BINARY_DIR}/deb/changelog)
string(TIMESTAMP _sluice_changelog_date "%a, %d %b %Y 00:00:00 +0000" UTC)
# The project has no public contact address or home page yet: set both when it does (the .invalid
# domain keeps the placeholder from ever reaching anyone).
set(SLUICE_DEB_MAINTAINER "sluice maintainers <maintainers@sluice.invalid>"
    CACHE STRING "Maintainer field of the Debian package")
set(SLUICE_HOMEPAGE "" CACHE STRING "Homepage field of the Debian package (left out when empty)")
file(WRITE ${_sluice_changelog}
     "sluice (${PROJECT_VERSION}) unstable; urgency=medium\n\n"
     "  * Release ${PROJECT_VERSION}. The changes are in the project's history.\n\n"
     " -- ${SLUICE_DEB_MAINTAINER}  ${_sluice_changelog_date}\n")
find_program(SLUICE_GZIP gzip REQUIRED)
execute_process(COMMAND ${SLUICE_GZIP} -9nf ${_sluice_changelog} RESULT_VARIABLE _sluice_gzip_rc)
if(NOT _sluice_gzip_rc EQUAL 0)
  message(FATAL_ERROR "gzip ${_sluice_changelog} failed: ${_sluice_gzip_rc}")
endif()
install(FILES ${_sluice_changelog}.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The Grafana dashboard and the Prometheus alerting rules (docs/operations.md), as files to copy
# to the monitoring system, so not under /usr/share/doc, which minimal systems leave out. Their
# unit tests stay in the source tree.
install(FILES ${PROJECT_SOURCE_DIR}/monitoring/sluice-dashboard.json
              ${PROJECT_SOURCE_DIR}/monitoring/sluice-alerts.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/sluice/monitoring)

# The manual pages, gzipped by cmake/ManPages.cmake.
install(FILES ${SLUICE_MAN_DIR}/sluice.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${SLUICE_MAN_DIR}/sluice.toml.5.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man5)
# Where bash-completion loads a command's completion from when it is first completed.
install(FILES ${PROJECT_SOURCE_DIR}/gateway/sluice.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME sluice)

# --- Debian package ----------------------------------------------------------------------------
# The architecture of the package is the one the binaries are built for: the cross toolchain file
# sets SLUICE_DEB_ARCHITECTURE (cmake/aarch64-linux-gnu.cmake), a native build asks dpkg.
if(NOT SLUICE_DEB_ARCHITECTURE)
  find_program(SLUICE_DPKG dpkg)
  if(SLUICE_DPKG)
    execute_process(COMMAND ${SLUICE_DPKG} --print-architecture
                    OUTPUT_VARIABLE SLUICE_DEB_ARCHITECTURE OUTPUT_STRIP_TRAILING_WHITESPACE)
  endif()
endif()

# Maintainer scripts name the configured paths, so they are generated, not copied.
set(_sluice_deb_dir ${PROJECT_BINARY_DIR}/deb/control)
foreach(_script postinst prerm postrm)
  configure_file(${PROJECT_SOURCE_DIR}/systemd/deb/${_script}.in ${_sluice_deb_dir}/${_script} @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                  WORLD_READ WORLD_EXECUTE)
endforeach()
# dpkg keeps an edited configuration across upgrades and removal; only a purge deletes it.
file(WRITE ${_sluice_deb_dir}/conffiles "${SLUICE_CONFIG_FILE}\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME sluice)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "sluice")
set(CPACK_PACKAGE_CONTACT "${SLUICE_DEB_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "edge event gateway: MQTT to a durable local log to Kafka")
set(CPACK_PACKAGE_DESCRIPTION [=[sluice subscribes to a local MQTT broker, writes every event into a
durable SQLite log on local storage before the broker may forget it, and
forwards the log in order to Apache Kafka. When the uplink is down, events
pile up on disk and are drained in order when it returns.

The package installs the daemon (sluice), its configuration in /etc/sluice,
a systemd unit that is not enabled, the system user sluice and the state
directory /var/lib/sluice, the device fleet simulator (sluice-sim), the
end-to-end verifier (sluice-verify), and a Grafana dashboard and Prometheus
alerting rules in /usr/share/sluice/monitoring.]=])
set(CPACK_PACKAGING_INSTALL_PREFIX "${CMAKE_INSTALL_PREFIX}")
set(CPACK_STRIP_FILES ON)
# One package for every install() rule; nothing built but not installed (tests) goes in.
set(CPACK_DEB_COMPONENT_INSTALL OFF)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_NAME sluice)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE "${SLUICE_DEB_ARCHITECTURE}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SLUICE_DEB_MAINTAINER}")
if(SLUICE_HOMEPAGE)
  set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${SLUICE_HOMEPAGE}")
endif()
# The shared libraries' packages come from dpkg-shlibdeps (for the cross build too: it reads the
# arm64 libraries' symbols files of the multiarch packages). postinst creates the system user with
# systemd-sysusers where systemd is installed and with adduser otherwise; adduser is on every
# standard Debian system anyway, and depending on it alone keeps apt from installing systemd into
# a container that has none. procps brings /bin/kill, the unit's ExecReload (systemctl reload):
# it is "important", not essential, and a minimal root (debootstrap minbase, a slim container
# image) lacks it, where the reload then fails with status 203/EXEC (scripts/systemd-test.sh).
# libcurl4 is loaded at run time (common/curl_library.h), so dpkg-shlibdeps cannot see it: named
# here, with the version CurlLibrary::kMinVersion asks for.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser, procps, libcurl4 (>= 7.85.0)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_sluice_deb_dir}/postinst ${_sluice_deb_dir}/prerm ${_sluice_deb_dir}/postrm
    ${_sluice_deb_dir}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)

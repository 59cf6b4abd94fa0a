# SPDX-License-Identifier: Apache-2.0
# The manual pages, written into ${SLUICE_MAN_DIR} (plain for the tests, gzipped for the package):
#   sluice(1)        docs/man/sluice.1.scd
#   sluice.toml(5)   docs/man/sluice.toml.5.scd around docs/configuration.md, converted by
#                    docs/man/md2scd.awk: the page is that document, so the two cannot drift apart
# scdoc (Debian package scdoc) turns them into roff. They are written at configure time, like the
# changelog, so that every configured build has them: cpack builds nothing, and the builds of a few
# targets (TSan, arm64) run the tests that read them too (tests/gateway/cli_man_page_test.sh).
# Editing a source configures again.
#
# Included from the top-level CMakeLists.txt before the tests; cmake/Packaging.cmake installs them.

find_program(SLUICE_SCDOC scdoc)
if(NOT SLUICE_SCDOC)
  message(FATAL_ERROR "scdoc not found: it writes the manual pages (Debian package scdoc, which "
                      "scripts/install-deps.sh installs)")
endif()
find_program(SLUICE_AWK awk REQUIRED)
find_program(SLUICE_GZIP gzip REQUIRED)

set(SLUICE_MAN_DIR ${PROJECT_BINARY_DIR}/man)
set(_man_src ${PROJECT_SOURCE_DIR}/docs/man)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${_man_src}/sluice.1.scd ${_man_src}/sluice.toml.5.scd ${_man_src}/md2scd.awk
             ${PROJECT_SOURCE_DIR}/docs/configuration.md)
file(MAKE_DIRECTORY ${SLUICE_MAN_DIR})

function(sluice_run_or_fail what)
  execute_process(${ARGN} RESULT_VARIABLE _rc ERROR_VARIABLE _err)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${_rc}): ${_err}")
  endif()
endfunction()

sluice_run_or_fail("md2scd.awk (docs/configuration.md into sluice.toml(5))"
  COMMAND ${SLUICE_AWK} -v md=${PROJECT_SOURCE_DIR}/docs/configuration.md
          -f ${_man_src}/md2scd.awk ${_man_src}/sluice.toml.5.scd
  OUTPUT_FILE ${SLUICE_MAN_DIR}/sluice.toml.5.scd)
# roff from SCD, and its gzip -9n as Debian wants it (lintian): smallest, and no time stamp.
function(sluice_man_page page scd)
  sluice_run_or_fail("scdoc ${scd}" COMMAND ${SLUICE_SCDOC} INPUT_FILE ${scd}
                     OUTPUT_FILE ${SLUICE_MAN_DIR}/${page})
  sluice_run_or_fail("gzip ${page}" COMMAND ${SLUICE_GZIP} -9nc ${SLUICE_MAN_DIR}/${page}
                     OUTPUT_FILE ${SLUICE_MAN_DIR}/${page}.gz)
endfunction()
sluice_man_page(sluice.1 ${_man_src}/sluice.1.scd)
sluice_man_page(sluice.toml.5 ${SLUICE_MAN_DIR}/sluice.toml.5.scd)

// SPDX-License-Identifier: Apache-2.0

#include "gateway/log_setup.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/test_util.h"

namespace sluice::gateway {
namespace {

TEST_CASE("FdIsJournalStream matches JOURNAL_STREAM against the descriptor's device and inode") {
  sluice::testing::TempDir dir;
  const int fd = open(dir.File("stream").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  const std::string same = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  const std::string other = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1);
  CHECK(FdIsJournalStream(fd, same.c_str()));
  CHECK_FALSE(FdIsJournalStream(fd, other.c_str()));
  CHECK_FALSE(FdIsJournalStream(fd, nullptr));
  CHECK_FALSE(FdIsJournalStream(fd, ""));
  CHECK_FALSE(FdIsJournalStream(fd, (same + "x").c_str()));
  close(fd);
}

}  // namespace
}  // namespace sluice::gateway

// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace sluice::gateway {

// True when `journal_stream` (the JOURNAL_STREAM variable, "<device>:<inode>") names the file
// that `fd` is: systemd connected it to journald. A JOURNAL_STREAM inherited by a process whose
// stderr was redirected elsewhere does not match, and logging stays on stderr.
bool FdIsJournalStream(int fd, const char* journal_stream);

// The daemon's logger: native journald entries (with syslog priorities, so `journalctl -p warning`
// works) when `journal` is true, timestamped lines on stderr otherwise.
std::shared_ptr<spdlog::logger> MakeDaemonLogger(const std::string& level, bool journal);

}  // namespace sluice::gateway

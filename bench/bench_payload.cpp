// SPDX-License-Identifier: Apache-2.0

#include "bench/bench_payload.h"

#include <charconv>
#include <chrono>

namespace sluice::bench {

namespace {
constexpr std::string_view kMagic = "sb1 ";

bool NextNumber(std::string_view& in, int64_t* out) {
  const auto* end = in.data() + in.size();
  auto [p, ec] = std::from_chars(in.data(), end, *out);
  if (ec != std::errc() || p == end || *p != ' ') return false;
  in.remove_prefix(static_cast<size_t>(p - in.data()) + 1);
  return true;
}
}  // namespace

int64_t NowUnixMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string EncodeStamp(const BenchStamp& stamp, size_t bytes) {
  std::string out;
  out.reserve(bytes + 64);
  out.append(kMagic);
  out.append(stamp.tag);
  out.push_back(' ');
  out.append(std::to_string(stamp.seq));
  out.push_back(' ');
  out.append(std::to_string(stamp.send_us));
  out.push_back(' ');
  if (out.size() < bytes) out.append(bytes - out.size(), 'x');
  return out;
}

std::optional<BenchStamp> DecodeStamp(std::string_view in) {
  if (in.substr(0, kMagic.size()) != kMagic) return std::nullopt;
  in.remove_prefix(kMagic.size());
  const auto space = in.find(' ');
  if (space == std::string_view::npos || space == 0) return std::nullopt;
  BenchStamp s;
  s.tag = std::string(in.substr(0, space));
  in.remove_prefix(space + 1);
  int64_t seq = 0;
  if (!NextNumber(in, &seq) || seq < 0 || !NextNumber(in, &s.send_us)) return std::nullopt;
  s.seq = static_cast<uint64_t>(seq);
  return s;
}

}  // namespace sluice::bench

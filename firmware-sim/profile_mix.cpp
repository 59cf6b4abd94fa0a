// SPDX-License-Identifier: Apache-2.0

#include "firmware-sim/profile_mix.h"

#include <algorithm>
#include <charconv>
#include <numeric>

namespace sluice::sim {

Status ProfileMix::Parse(std::string_view spec, ProfileMix* out) {
  ProfileMix mix;
  std::array<bool, kProfileCount> seen{};
  size_t order_len = 0;
  size_t pos = 0;
  while (pos <= spec.size()) {
    const size_t comma = std::min(spec.find(',', pos), spec.size());
    const std::string_view item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    const size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      return Status::InvalidArgument("--profiles item '" + std::string(item) +
                                     "' is not NAME:COUNT (e.g. telemetry:14,vibration:2)");
    }
    ProfileKind kind;
    Status s = DeviceProfile::FromName(item.substr(0, colon), &kind);
    if (!s.ok()) return Status::InvalidArgument("--profiles: " + s.message());
    const std::string_view num = item.substr(colon + 1);
    size_t n = 0;
    const auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (ec != std::errc() || end != num.data() + num.size() || num.empty()) {
      return Status::InvalidArgument("--profiles item '" + std::string(item) +
                                     "': the count must be a non-negative integer");
    }
    const size_t i = static_cast<size_t>(kind);
    if (seen[i]) {
      return Status::InvalidArgument("--profiles names '" +
                                     std::string(DeviceProfile::Get(kind).name()) + "' twice");
    }
    seen[i] = true;
    mix.counts_[i] = n;
    mix.order_[order_len++] = kind;
  }
  // Profiles the spec leaves out keep their default position after the named ones.
  for (ProfileKind kind : DeviceProfile::All()) {
    if (!seen[static_cast<size_t>(kind)]) mix.order_[order_len++] = kind;
  }
  if (mix.total() == 0) return Status::InvalidArgument("--profiles adds up to 0 devices");
  *out = mix;
  return Status::Ok();
}

ProfileMix ProfileMix::Default(size_t devices) {
  static constexpr std::array<size_t, kProfileCount> kTenths = {7, 1, 1, 1};
  ProfileMix mix;
  std::array<size_t, kProfileCount> remainder{};
  size_t assigned = 0;
  for (size_t i = 0; i < kProfileCount; ++i) {
    mix.counts_[i] = devices * kTenths[i] / 10;
    remainder[i] = devices * kTenths[i] % 10;
    assigned += mix.counts_[i];
  }
  while (assigned < devices) {
    // max_element returns the first of equal remainders: ties go to the earlier profile.
    const size_t i = static_cast<size_t>(std::max_element(remainder.begin(), remainder.end()) -
                                         remainder.begin());
    mix.counts_[i]++;
    remainder[i] = 0;
    assigned++;
  }
  return mix;
}

size_t ProfileMix::total() const {
  return std::accumulate(counts_.begin(), counts_.end(), size_t{0});
}

std::vector<ProfileKind> ProfileMix::Assign() const {
  std::vector<ProfileKind> out;
  out.reserve(total());
  for (ProfileKind kind : order_) out.insert(out.end(), count(kind), kind);
  return out;
}

std::string ProfileMix::ToString() const {
  std::string out;
  for (ProfileKind kind : order_) {
    if (count(kind) == 0) continue;
    if (!out.empty()) out += ',';
    out.append(DeviceProfile::Get(kind).name()).append(":").append(std::to_string(count(kind)));
  }
  return out;
}

}  // namespace sluice::sim

// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <mqtt/async_client.h>

#include <chrono>
#include <memory>
#include <string>

#include "firmware-sim/device_link.h"

namespace sluice::sim {

struct PahoLinkOptions {
  std::string url = "tcp://127.0.0.1:1883";
  std::string username;
  std::string password;
  // TLS is used when the URL is ssl:// or mqtts://, or when any of these is set.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::chrono::seconds keepalive{10};
  std::chrono::seconds connect_timeout{10};
  // Paho's own in-flight limit; the fleet's per-device window must stay below it, and below the
  // 100 unsent publishes Paho buffers per client.
  int max_inflight = 80;
};

// DeviceLink on a Paho C++ async_client: one client (one TCP connection) per simulated device,
// as real firmware has. Clean session, no client-side persistence: a device's outbox is the
// fleet's DeviceQueue, not Paho. The last will is the device's retained "offline" status.
//
// Threads: the calls come from the fleet's scheduler thread; Paho reports outcomes on its own
// threads through the listener, and no exception leaves a Paho callback.
class PahoDeviceLink final : public DeviceLink {
 public:
  // A factory that makes a PahoDeviceLink per device with these options.
  static DeviceLinkFactory Factory(PahoLinkOptions options);

  // Use Factory(); public only for std::make_unique. `listener` outlives the link.
  PahoDeviceLink(const PahoLinkOptions& options, const LinkSpec& spec, Listener* listener,
                 std::unique_ptr<mqtt::async_client> client);
  ~PahoDeviceLink() override;

  PahoDeviceLink(const PahoDeviceLink&) = delete;
  PahoDeviceLink& operator=(const PahoDeviceLink&) = delete;

  Status Connect() override;
  Status Publish(const std::string& topic, const std::string& payload, int qos, bool retained,
                 uint64_t tag) override;
  Status Disconnect(std::chrono::milliseconds timeout) override;

 private:
  // Forwards a Paho token's outcome to two functions; what Paho's async calls report to.
  class Callback final : public mqtt::iaction_listener {
   public:
    using Fn = std::function<void(const mqtt::token&)>;
    Callback(Fn on_success, Fn on_failure)
        : on_success_(std::move(on_success)), on_failure_(std::move(on_failure)) {}
    void on_success(const mqtt::token& tok) override;
    void on_failure(const mqtt::token& tok) override;

   private:
    Fn on_success_;
    Fn on_failure_;
  };

  const PahoLinkOptions options_;
  const LinkSpec spec_;
  Listener* const listener_;  // outlives this link
  std::unique_ptr<mqtt::async_client> client_;
  Callback connect_cb_;
  Callback publish_cb_;
  Callback disconnect_cb_;
};

}  // namespace sluice::sim

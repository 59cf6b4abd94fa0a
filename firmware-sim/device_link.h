// SPDX-License-Identifier: Apache-2.0

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace sluice::sim {

// One device's MQTT connection as the fleet sees it: the mechanism (Paho) behind a handful of
// asynchronous calls, so that the fleet's policy (queues, windows, reboots, reconnects) is tested
// with a fake. Each call starts an operation and returns; its outcome arrives later through the
// Listener, on whatever thread the implementation uses.
//
// Contract, per operation:
//   Connect()    -> exactly one of OnConnected / OnConnectFailed, unless it returns an error.
//   Publish()    -> at most one of OnPublished / OnPublishFailed, unless it returns an error;
//                   possibly none when the connection is lost meanwhile (the caller then treats
//                   the publish as failed when it hears OnConnectionLost).
//   Disconnect() -> exactly one OnDisconnected, unless it returns an error.
//   OnConnectionLost may come at any time while connected.
// Calls are made from one thread (the fleet's scheduler), never from inside a Listener callback.
class DeviceLink {
 public:
  // Called from the implementation's threads. Must be quick, must not throw, and must not call
  // back into the link.
  class Listener {
   public:
    virtual ~Listener() = default;
    virtual void OnConnected() = 0;
    virtual void OnConnectFailed(const std::string& reason) = 0;
    virtual void OnConnectionLost(const std::string& reason) = 0;
    virtual void OnPublished(uint64_t tag) = 0;
    virtual void OnPublishFailed(uint64_t tag, const std::string& reason) = 0;
    virtual void OnDisconnected() = 0;
  };

  virtual ~DeviceLink() = default;

  virtual Status Connect() = 0;
  // QoS 0: OnPublished once the message was written to the socket; QoS 1/2: once the broker
  // acknowledged it.
  virtual Status Publish(const std::string& topic, const std::string& payload, int qos,
                         bool retained, uint64_t tag) = 0;
  // Waits up to `timeout` for publishes in flight before closing, then reports OnDisconnected.
  // A clean disconnect: the broker does not publish the last will.
  virtual Status Disconnect(std::chrono::milliseconds timeout) = 0;
};

// What a link is created from: the device's MQTT identity and its last will.
struct LinkSpec {
  std::string device_id;
  std::string client_id;
  std::string will_topic;
  std::string will_payload;
};

// Creates the link of one device into *out, or says why it cannot (a malformed URL, say).
// `listener` outlives the link.
using DeviceLinkFactory = std::function<Status(const LinkSpec& spec, DeviceLink::Listener* listener,
                                               std::unique_ptr<DeviceLink>* out)>;

}  // namespace sluice::sim

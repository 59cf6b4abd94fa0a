// SPDX-License-Identifier: Apache-2.0

// HoldList: the refusals an operator must fix, as every sink reports them.

#include "connectors/hold_list.h"

#include <doctest/doctest.h>

#include "tests/test_util.h"

namespace sluice::connectors {

using sluice::testing::NullLogger;

TEST_CASE("HoldList reports every held key's reason and counts each hold once") {
  HoldList holds("Kafka upstream 'central': ", "Kafka", NullLogger());
  CHECK(holds.Reason().empty());
  CHECK(holds.Count() == 0);
  holds.Add("a", "topic a is missing");
  holds.Add("a", "topic a is still missing");  // the same hold, a newer reason
  holds.Add("", "no broker answers");
  CHECK(holds.Count() == 2);
  CHECK(holds.Reason() == "no broker answers; topic a is still missing");
  CHECK(holds.Keys() == std::vector<std::string>{"", "a"});
  holds.Erase("");
  CHECK(holds.Reason() == "topic a is still missing");
  holds.Add("", "no broker answers");  // held again: a new hold
  CHECK(holds.Count() == 3);
  holds.Clear();
  CHECK(holds.Reason().empty());
  CHECK(holds.Keys().empty());
  CHECK(holds.Count() == 3);
}

}  // namespace sluice::connectors

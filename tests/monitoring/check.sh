#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks monitoring/ (the Grafana dashboard, the Prometheus alerting rules and their unit tests)
# against itself, Prometheus' own tool and a running sluice:
#   1. `promtool check rules` accepts the rules and `promtool test rules` passes their unit tests;
#      every alert has a test case where it fires and one where it stays silent, and a copy of the
#      rules with a threshold changed fails the tests (they can fail);
#   2. every alert has a severity label, a summary, a description and a runbook_url naming its
#      own section of docs/operations.md, which exists; that page's "Alerts" section describes no
#      alert the rules lack;
#   3. the dashboard is JSON Grafana imports: schemaVersion, unique panel ids, panels on the
#      24-column grid, the datasource and instance variables, every query through the datasource
#      variable and every sluice selector filtered by $instance;
#   4. every metric name in a dashboard query, a rule or a test series is one the sluice given
#      serves: it runs, without brokers, with a Kafka and an MQTT upstream, and its /metrics is
#      scraped (`promtool check metrics` lints that answer too). A misspelled name is caught.
# promtool (Debian package prometheus) and jq are required: missing, the check fails.
# Usage: check.sh SLUICE_BINARY METRICS_PORT
set -euo pipefail
sluice=${1:?usage: $0 SLUICE_BINARY METRICS_PORT}
port=${2:?usage: $0 SLUICE_BINARY METRICS_PORT}
root=$(cd "$(dirname "$0")/../.." && pwd)
mon=$root/monitoring
rules=$mon/sluice-alerts.yml
rule_tests=$mon/sluice-alerts.test.yml
dashboard=$mon/sluice-dashboard.json
ops=$root/docs/operations.md
# shellcheck source=scripts/lib/sluice_http.sh
source "$root/scripts/lib/sluice_http.sh"

for tool in promtool jq; do
  command -v "$tool" >/dev/null ||
    { echo "monitoring: $tool not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/sluice-monitoring.XXXXXX)
pid=""
cleanup() {
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

failures=0
fail() {
  echo "monitoring: FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { echo "monitoring: ok: $*"; }

# --- the rules and their unit tests ----------------------------------------------------------
promtool check rules "$rules" || fail "promtool check rules $rules"
(cd "$mon" && promtool test rules "$(basename "$rule_tests")") || fail "promtool test rules"

# One line per alert: NAME<TAB>severity<TAB>has summary<TAB>has description<TAB>runbook_url,
# read from the rule file's layout (one `- alert:` block each, keys on lines of their own).
alerts=$(awk '
  function flush() { if (name != "") printf "%s\t%s\t%d\t%d\t%s\n", name, sev, sum, desc, rb }
  /^ *- alert: / { flush(); name = $3; sev = ""; sum = 0; desc = 0; rb = "" }
  /^ *- record: / { flush(); name = "" }
  name != "" && /^ +severity: / { sev = $2 }
  name != "" && /^ +summary: / { sum = 1 }
  name != "" && /^ +description: / { desc = 1 }
  name != "" && /^ +runbook_url: / { rb = $2; gsub(/"/, "", rb) }
  END { flush() }' "$rules")
[[ -n "$alerts" ]] || fail "no alert found in $rules"
# The "Alerts" section of docs/operations.md: up to the next second-level heading.
alert_docs=$(awk '/^## / { in_alerts = ($0 == "## Alerts") } in_alerts' "$ops")
[[ -n "$alert_docs" ]] || fail "$ops has no section '## Alerts'"
while IFS=$'\t' read -r name sev sum desc rb; do
  [[ "$sev" == critical || "$sev" == warning ]] ||
    fail "alert $name: severity '$sev', expected critical or warning"
  ((sum && desc)) || fail "alert $name lacks the summary or the description annotation"
  anchor=$(tr '[:upper:]' '[:lower:]' <<<"$name")
  [[ "$rb" == "docs/operations.md#$anchor" ]] ||
    fail "alert $name: runbook_url '$rb', expected docs/operations.md#$anchor"
  grep -qx "### $name" <<<"$alert_docs" ||
    fail "alert $name: no heading '### $name' in the Alerts section of $ops"
  # Cases of this alert: "fires" when exp_alerts lists alerts, "silent" for `exp_alerts: []`.
  cases=$(awk -v n="$name" '
    /^ *alertname: / { current = $2 }
    /^ *exp_alerts:/ && current == n { print ($2 == "[]" ? "silent" : "fires"); current = "" }
  ' "$rule_tests" | sort -u | tr '\n' ' ')
  [[ "$cases" == "fires silent " ]] ||
    fail "alert $name: $rule_tests needs a case where it fires and one where it stays silent (has: ${cases:-none})"
done <<<"$alerts"
while read -r heading; do
  grep -q "^${heading#\#\#\# }"$'\t' <<<"$alerts" ||
    fail "$ops describes alert '${heading#\#\#\# }', which $rules does not have"
done < <(grep '^### ' <<<"$alert_docs")
ok "rules: $(wc -l <<<"$alerts") alerts, each with severity, summary, description, runbook, a firing and a silent test case"

# The unit tests can fail: a copy of the rules whose first alert fires later fails them.
mkdir -p "$work/mutant"
first_for=$(grep -m1 -n '^ *for: ' "$rules" | cut -d: -f1)
sed "${first_for}s/for: .*/for: 59m/" "$rules" >"$work/mutant/$(basename "$rules")"
cp "$rule_tests" "$work/mutant/"
if (cd "$work/mutant" && promtool test rules "$(basename "$rule_tests")") >/dev/null 2>&1; then
  fail "the rule tests pass even with line $first_for of $rules changed to 'for: 59m'"
fi

# --- the dashboard -----------------------------------------------------------------------------
jq -e . "$dashboard" >/dev/null || { echo "monitoring: FAIL: $dashboard is not valid JSON" >&2; exit 1; }
# Each jq program prints what is wrong, one line per problem; nothing when all is well.
problems=$(jq -r '
  def ds_ok: type == "object" and .uid == "${datasource}" and .type == "prometheus";
  [.panels[]] as $p
  | (if (.schemaVersion | type) != "number" or .schemaVersion < 36
     then "schemaVersion \(.schemaVersion) is not 36 or later" else empty end),
    (if (.title // "") == "" or (.uid // "") == "" then "title or uid missing" else empty end),
    (.templating.list | map(select(.name == "datasource"))[0]
     | if .type != "datasource" or .query != "prometheus"
       then "no variable datasource of type datasource for prometheus" else empty end),
    (.templating.list | map(select(.name == "instance"))[0]
     | if .type != "query" or (.datasource | ds_ok | not)
       then "no query variable instance through ${datasource}" else empty end),
    ($p | map(.id) | group_by(.) | map(select(length > 1)[0])[]
     | "panel id \(.) is used twice"),
    ($p[] | select(.gridPos.w < 1 or .gridPos.x < 0 or .gridPos.x + .gridPos.w > 24
                   or .gridPos.h < 1 or .gridPos.y < 0)
     | "panel \(.id) \(.title): gridPos \(.gridPos) is off the 24-column grid"),
    ($p[] | select(.type != "row") | select((.datasource | ds_ok | not)
            or (.targets | length) == 0 or any(.targets[]; .datasource | ds_ok | not))
     | "panel \(.id) \(.title): no queries, or a datasource other than ${datasource}"),
    ($p[] | select(.type != "row") | select(.targets | map(.refId) | length != (unique | length))
     | "panel \(.id) \(.title): refIds repeat")
' "$dashboard")
[[ -z "$problems" ]] || fail "$dashboard: $problems"
# Every selector of a sluice metric is filtered by the instance variable.
while read -r expr; do
  # shellcheck disable=SC2016 # $instance is Grafana's variable, not the shell's
  unfiltered=$(grep -oE 'sluice_[a-z0-9_]+(\{[^}]*\})?' <<<"$expr" | grep -v 'instance=~"\$instance"' || true)
  [[ -z "$unfiltered" ]] || fail "dashboard query without instance=~\"\$instance\": $unfiltered in $expr"
done < <(jq -r '.panels[].targets[]?.expr' "$dashboard")
ok "dashboard: $(jq '[.panels[] | select(.type != "row")] | length' "$dashboard") panels, schemaVersion $(jq .schemaVersion "$dashboard"), variables $(jq -r '[.templating.list[].name] | join(", ")' "$dashboard")"

# --- metric names against a running sluice ---------------------------------------------------
# Metric names of PromQL expressions on stdin, one expression a line: strings, label matchers,
# ranges and grouping label lists are removed; what remains of identifiers is a function (before
# a parenthesis), a keyword, or a metric name.
metric_names() {
  sed -E -e 's/label_values\(([^,]*),[^)]*\)/\1/g' -e 's/"([^"\\]|\\.)*"//g' \
    -e 's/\{[^}]*\}//g' -e 's/\[[^]]*\]//g' \
    -e 's/\b(by|without|on|ignoring|group_left|group_right)[[:space:]]*\([^)]*\)//g' |
    grep -oE '[A-Za-z_:][A-Za-z0-9_:]*[[:space:]]*\(?' | sed -E 's/[[:space:]]+//' |
    grep -vE '\($|^(and|or|unless|bool|offset|by|without|on|ignoring|group_left|group_right|inf|nan)$' |
    sort -u || true
}
# Expressions of the rule file: `expr:` on one line, or a block (| or >) indented below it.
rule_exprs() {
  awk '
    block && match($0, /^ */) && RLENGTH > indent && $0 !~ /^ *$/ { print; next }
    { block = 0 }
    /^ *expr: *[|>][-+]? *$/ { block = 1; match($0, /^ */); indent = RLENGTH; next }
    /^ *expr: / { sub(/^ *expr: */, ""); print }
  ' "$1"
}

config=$work/sluice.toml
cat >"$config" <<EOF
[gateway]
id = "monitoring-check"

[storage]
path = "$work/events.db"

[mqtt]
# Nothing listens on port 1: sluice keeps retrying, and serves its metrics meanwhile.
url = "tcp://127.0.0.1:1"
reconnect_max_ms = 60000

[upstream.kafka]
kind = "kafka"
brokers = "127.0.0.1:1"

[upstream.cloud]
kind = "mqtt"
url = "tcp://127.0.0.1:1"

[metrics]
enabled = true
listen = "127.0.0.1:$port"

[[route]]
mqtt = "devices/#"
to = { kafka = "telemetry", cloud = "{mqtt_topic}" }
EOF
"$sluice" run --config "$config" >"$work/sluice.log" 2>&1 &
pid=$!
scrape=""
deadline=$((SECONDS + 30))
while ((SECONDS <= deadline)) && kill -0 "$pid" 2>/dev/null; do
  scrape=$(sluice_http 127.0.0.1 "$port" /metrics) || scrape=""
  [[ "$scrape" == "HTTP/1.1 200 "* ]] && break
  scrape=""
  sleep 0.1
done
if [[ -z "$scrape" ]]; then
  fail "sluice served no /metrics on 127.0.0.1:$port within 30 s; its log:"
  cat "$work/sluice.log" >&2
else
  body=$(sed '1,/^\r\{0,1\}$/d' <<<"$scrape" | tr -d '\r')
  # Sample names (histograms as _bucket, _sum and _count), then Prometheus' own `up`.
  served=$(awk '!/^#/ && NF { sub(/[{ ].*/, ""); print }' <<<"$body" | sort -u)
  ok "sluice serves $(grep -c . <<<"$served") sample names"
  served=$( (cat <<<"$served"; echo up) | sort -u)
  if ! grep -qx 'sluice_upstream_connected' <<<"$served" || ! grep -q 'upstream="cloud"' <<<"$body"; then
    fail "the scrape lacks the per-upstream metrics of the configured upstreams"
  fi
  if lint=$(promtool check metrics <<<"$body" 2>&1); then
    ok "promtool check metrics: no complaints about the scrape"
  else
    fail "promtool check metrics: $lint"
  fi

  # Names in the dashboard (queries and variables), the rules and the test series.
  used_dashboard=$(jq -r '(.panels[].targets[]?.expr), (.templating.list[] | select(.type == "query") | .query | if type == "object" then .query else . end)' "$dashboard" | metric_names)
  used_rules=$(rule_exprs "$rules" | metric_names)
  used_tests=$(sed -nE "s/^ *- series: '([A-Za-z_:][A-Za-z0-9_:]*).*/\1/p" "$rule_tests" | sort -u)
  for pair in "dashboard:$used_dashboard" "rules:$used_rules" "rule tests:$used_tests"; do
    what=${pair%%:*}
    names=${pair#*:}
    [[ -n "$names" ]] || fail "found no metric names in the $what"
    unknown=$(comm -23 <(sort -u <<<"$names") <(cat <<<"$served"))
    [[ -z "$unknown" ]] || fail "the $what use metrics sluice does not serve: $(tr '\n' ' ' <<<"$unknown")"
    ok "$what: $(grep -c . <<<"$names") metric names, all served by sluice"
  done
  # The name check can fail: a misspelled name is reported.
  [[ "$(metric_names <<<'rate(sluice_events_forwarded_totl{upstream="x"}[5m])' | comm -23 - <(cat <<<"$served"))" == sluice_events_forwarded_totl ]] ||
    fail "the metric name check does not catch a misspelled name"
  # The dashboard shows every metric: a new one needs a panel (or a query in one).
  families=$(sed -nE 's/^# TYPE ([^ ]+) .*/\1/p' <<<"$body" | sort -u)
  [[ -n "$families" ]] || fail "the scrape has no '# TYPE' lines"
  missing=$(while read -r f; do
    grep -qE "^${f}(_bucket|_sum|_count)?$" <<<"$used_dashboard" || echo "$f"
  done <<<"$families")
  [[ -z "$missing" ]] || fail "the dashboard does not show: $(tr '\n' ' ' <<<"$missing")"
  ok "the dashboard shows all $(grep -c . <<<"$families") metrics"
fi

if ((failures)); then
  echo "monitoring: $failures check(s) failed" >&2
  exit 1
fi
echo "monitoring: all checks passed"

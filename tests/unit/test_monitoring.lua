-- examples/monitoring/: the Prometheus alert rules pass `promtool check
-- rules` and their own `promtool test rules` cases, every expression of the
-- Grafana dashboard parses as PromQL, and every metric either names is one
-- the agent exports (src/api/metrics.c).  No network.  promtool is the
-- Debian package prometheus: without it the promtool tests are skipped,
-- saying so; the metric names are checked either way.
local lu = require "luaunit"
local util = require "util"
local sh = util.sh
local read = util.read
local cjson = require "cjson"
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")
local DIR = SRC .. "/examples/monitoring"

local function run(cmd)
    local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    return tonumber(out:match("rc=(%d+)\n?$")), out
end

local function promtool()
    local code = run("command -v promtool")
    if code ~= 0 then
        lu.skip("promtool is missing (Debian package prometheus): the alert rules are not checked")
    end
    return "promtool"
end

-- every metric name the agent writes: the string literals of metrics.c
local function exported()
    local names = {}
    for name in read(SRC .. "/src/api/metrics.c"):gmatch('"(lmdisc_[%w_]+)') do names[name] = true end
    return names
end

local function metric_names(expr)
    local out = {}
    for name in expr:gmatch("lmdisc_[%w_]+") do out[#out + 1] = name end
    return out
end

-- the dashboard's expressions, {title, expr}
local function dashboard_exprs()
    local dash = cjson.decode(read(DIR .. "/grafana-dashboard.json"))
    local out = {}
    local function walk(panels)
        for _, p in ipairs(panels or {}) do
            for _, t in ipairs(p.targets or {}) do out[#out + 1] = { title = p.title, expr = t.expr } end
            walk(p.panels)
        end
    end
    walk(dash.panels)
    return out, dash
end

TestMonitoring = {}

function TestMonitoring:test_the_agent_exports_what_they_name()
    local have = exported()
    lu.assertTrue(have.lmdisc_peers_alive and have.lmdisc_untrusted_total and have.lmdisc_dns_services_failing,
        "read too few names from src/api/metrics.c")
    local missing, used = {}, {}
    local rules = read(DIR .. "/alerts.yml")
    for _, name in ipairs(metric_names(rules)) do
        used[name] = true
        if not have[name] then missing[#missing + 1] = "alerts.yml: " .. name end
    end
    local exprs = dashboard_exprs()
    lu.assertTrue(#exprs >= 20, "the dashboard has only " .. #exprs .. " queries")
    for _, e in ipairs(exprs) do
        for _, name in ipairs(metric_names(e.expr)) do
            used[name] = true
            if not have[name] then missing[#missing + 1] = "grafana-dashboard.json (" .. e.title .. "): " .. name end
        end
    end
    lu.assertEquals(missing, {}, "metrics the agent does not export")
    -- a counter is asked for its rate or increase, never its raw value
    local all = {}
    for expr in rules:gmatch("\n%s+expr: ([^\n]+)") do all[#all + 1] = { title = "alerts.yml", expr = expr } end
    lu.assertEquals(#all, 7)
    for _, e in ipairs(exprs) do all[#all + 1] = e end
    for _, e in ipairs(all) do
        for name in e.expr:gmatch("lmdisc_[%w_]+_total") do
            lu.assertTrue(e.expr:find("rate%(" .. name) ~= nil or e.expr:find("increase%(" .. name) ~= nil,
                e.title .. ": counter " .. name .. " used without rate() or increase()")
        end
    end
end

function TestMonitoring:test_the_rules_cover_what_operators_page_on()
    local rules = read(DIR .. "/alerts.yml")
    for _, alert in ipairs({ "LmdiscAgentDown", "LmdiscPolicyFailing", "LmdiscDnsServicesFailing",
                             "LmdiscResolverPoolDegraded", "LmdiscUntrustedPeersRising" }) do
        lu.assertStrContains(rules, "alert: " .. alert .. "\n")
        lu.assertStrContains(read(DIR .. "/alerts.test.yml"), "alertname: " .. alert .. "\n")
    end
end

function TestMonitoring:test_promtool_checks_the_rules()
    local p = promtool()
    local code, out = run(p .. " check rules " .. sh(DIR .. "/alerts.yml"))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "SUCCESS: 7 rules found")
end

function TestMonitoring:test_promtool_runs_the_rules_test_cases()
    local p = promtool()
    -- promtool reads the rule files relative to the test file
    local code, out = run("cd " .. sh(DIR) .. " && " .. p .. " test rules alerts.test.yml")
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "SUCCESS")
end

-- promtool parses PromQL when it checks rules: the dashboard's queries, as
-- recording rules (Grafana's variables given values), go through it too.
function TestMonitoring:test_the_dashboards_queries_parse()
    local p = promtool()
    local exprs, dash = dashboard_exprs()
    lu.assertEquals(dash.uid, "lmdisc-fleet")
    local ids = {}
    for _, panel in ipairs(dash.panels) do
        lu.assertNil(ids[panel.id], "two panels with id " .. tostring(panel.id))
        ids[panel.id] = true
    end
    local lines = { "groups:", "  - name: dashboard", "    rules:" }
    for i, e in ipairs(exprs) do
        local expr = e.expr:gsub("%$instance", ".*")
        lines[#lines + 1] = ("      - record: lmdisc_dashboard_query_%d"):format(i)
        lines[#lines + 1] = "        expr: '" .. expr:gsub("'", "''") .. "'" -- YAML, single-quoted
    end
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(table.concat(lines, "\n"), "\n")
    f:close()
    local code, out = run(p .. " check rules " .. sh(path))
    os.remove(path)
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, ("SUCCESS: %d rules found"):format(#exprs))
end

os.exit(lu.LuaUnit.run())

--- lmdisc.config: the configuration directives, their defaults and validation.
--
--   local config = require "lmdisc.config"
--   local c = config.new_collector("@/etc/lmdisc/agent.lua")
--   c:install(env)                 -- announce, registry, policy, api, health, checks, log
--   ... run the chunk ...
--   local settings, err = c:finish(overrides)
--
-- The schema below is the single source of truth: validation, defaults and
-- the configuration reference (config.reference()) are all derived from it,
-- so a field is documented the moment it exists.

local lmdisc = require "lmdisc"

local M = {}

---------------------------------------------------------------------------
-- small helpers

-- Optimal string alignment distance: a transposition ("prot" for "port")
-- counts as one edit, which is the typo people actually make.
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end
M.distance = distance

--- The candidate closest to word, if it is close enough to be a typo.
-- max_distance defaults to 1 for short words and 2 otherwise.
function M.suggest(word, candidates, max_distance)
  if type(word) ~= "string" then return nil end
  local lw = word:lower()
  local limit = max_distance or (#word <= 4 and 1 or 2)
  local best, best_d
  for _, c in ipairs(candidates) do
    local lc = c:lower()
    local d = distance(lw, lc)
    -- "warn" for "warning": a prefix is as good as one edit
    if #lw >= 3 and #lw < #lc and lc:sub(1, #lw) == lw then d = math.min(d, 1) end
    if d <= limit and d < #c and (not best_d or d < best_d) then best, best_d = c, d end
  end
  return best
end

-- How a value reads in an error message: got string "80", got number 7.
local function describe(v)
  local t = type(v)
  if t == "string" then
    local s = #v > 40 and v:sub(1, 37) .. "..." or v
    return (("string %q"):format(s):gsub("\\\n", "\\n"))
  elseif t == "number" or t == "boolean" then
    return t .. " " .. tostring(v)
  end
  return t
end
M.describe = describe

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local c = {}
  for k, x in pairs(v) do c[k] = deep_copy(x) end
  return c
end
M.deep_copy = deep_copy

---------------------------------------------------------------------------
-- checks used by the schema: return true | nil, reason

-- The key of t that is lmdisc's own (lmdisc.TXT_RESERVED: "lmd-", any
-- case), and the one wording of its refusal (the same as C's, base/txt.c).
local function reserved_txt_key(t)
  local prefix = lmdisc.TXT_RESERVED
  local keys = {}
  for k in pairs(t) do
    if type(k) == "string" and k:sub(1, #prefix):lower() == prefix then keys[#keys + 1] = k end
  end
  table.sort(keys)
  return keys[1]
end

function M.reserved_txt_error(t)
  local k = reserved_txt_key(t)
  if not k then return nil end
  return ("the TXT key '%s' is reserved: keys beginning with '%s' are lmdisc's own (signatures, liveness); "
    .. "choose another name"):format(k, lmdisc.TXT_RESERVED)
end

local function check_txt(t)
  local ok, err = lmdisc.txt_check(t)
  if not ok then return nil, err end
  if t.info ~= nil then
    return nil, "the TXT key 'info' is set with info = ..., not inside txt (announce { info = \"...\", txt = { ... } })"
  end
  local reserved = M.reserved_txt_error(t)
  if reserved then return nil, reserved end
  return true
end

local function check_fleet(t)
  if #t == 0 then return nil, "must list at least one fleet public key file" end
  for k, v in pairs(t) do
    if type(k) ~= "number" or type(v) ~= "string" or v == "" then
      return nil, "must be a list of paths of fleet public keys, like { \"/etc/lmdisc/fleet.pub\" }"
    end
  end
  return true
end

-- The machine's memory (the C module's lmdisc.MEMORY_MB, where known).
local function check_memory(mb)
  local have = lmdisc.MEMORY_MB
  if have and mb > have then
    return nil, ("is %g MiB, more than this machine has (%d MiB)"):format(mb, have)
  end
  return true
end

local function check_info(s)
  local ok, err = lmdisc.txt_check { info = s }
  if not ok then return nil, err end
  return true
end

local function check_service_type(s)
  return lmdisc.service_type_check(s)
end

local function check_url(s)
  if s:match("^https://") then
    return nil, "https is not supported for health checks; point it at a plain http:// endpoint, e.g. \"http://127.0.0.1:8000/health\""
  end
  if not s:match("^http://[^/%s]+") then
    return nil, ("must be a URL like \"http://127.0.0.1:8000/health\", got %q"):format(s)
  end
  return true
end

local function check_path(s)
  if s:sub(1, 1) ~= "/" or s:find("%s") then
    return nil, ("must be an HTTP path starting with '/', like \"/health\", got %q"):format(s)
  end
  return true
end

local function check_listen(s)
  local host, port = s:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return nil, ("must be \"host:port\" (IPv6 as \"[::1]:port\"), like \"127.0.0.1:7380\", got %q"):format(s)
  end
  return true
end

local function check_domain(s)
  local d = s:gsub("%.$", "")
  if #d == 0 or #d > 253 or d:find("%.%.") or d:sub(1, 1) == "." then
    return nil, ("must be a DNS domain like \"sd.example.org\", got %q"):format(s)
  end
  for label in d:gmatch("[^.]+") do
    if #label > 63 or not label:match("^[%w_]([%w_-]*)$") then
      return nil, ("must be a DNS domain like \"sd.example.org\" (labels of letters, digits, '-' and '_', at most 63 bytes), got %q"):format(s)
    end
  end
  if d:lower():match("local$") and (d:lower() == "local" or d:lower():match("%.local$")) then
    return nil, "must not be .local: that is mDNS's domain (mdns { }); give the site's DNS-SD domain, like \"sd.example.org\""
  end
  return true
end

local function check_label(s)
  if #s > 63 or not s:match("^[%w]([%w-]*)$") then
    return nil, ("must be one DNS label (letters, digits and '-', at most 63 bytes) like \"h1\", got %q"):format(s)
  end
  return true
end

local function check_ip(s)
  if s:match("^%d+%.%d+%.%d+%.%d+$") then
    for n in s:gmatch("%d+") do
      if tonumber(n) > 255 then return nil, ("must be an IPv4 or IPv6 address like \"10.0.0.53\", got %q"):format(s) end
    end
    return true
  end
  if s:find(":", 1, true) and s:match("^[%x:.]+$") then return true end
  return nil, ("must be an IPv4 or IPv6 address like \"10.0.0.53\" (not a host name: the agent does not resolve it), got %q"):format(s)
end

local function check_read(t)
  if #t == 0 then return nil, "must list at least one server address, like { \"10.1.0.53\" }" end
  if #t > 8 then return nil, ("lists %d servers, at most 8"):format(#t) end
  for k, v in pairs(t) do
    if type(k) ~= "number" or type(v) ~= "string" then
      return nil, "must be a list of IPv4 or IPv6 address strings, like { \"10.1.0.53\", \"10.2.0.53\" }"
    end
    local ok, why = check_ip(v)
    if not ok then return nil, ("[%d] %s"):format(k, why) end
  end
  return true
end

local function exactly_one(section, a, a_example, b, b_example)
  return function(v)
    local has_a = v[a] ~= nil and v[a] ~= false
    local has_b = v[b] ~= nil and v[b] ~= false
    if has_a and has_b then
      return nil, ("give either %s or %s, not both"):format(a, b)
    elseif not has_a and not has_b then
      return nil, ("needs one of %s = %s or %s = %s, e.g. %s { %s = %s }"):format(
        a, a_example, b, b_example, section, a, a_example)
    end
    return true
  end
end

---------------------------------------------------------------------------
-- the schema
--
-- Field keys: name, type ("integer" | "number" | "string" | "boolean" |
-- "table"), doc (one line), default, required, min / max (inclusive),
-- above (exclusive lower bound), min_len / max_len (bytes), enum (list),
-- check (function(value) -> true | nil, reason), example (for messages),
-- c: how C reads the field: nil, through its field list (lmd_cfg_fields in
-- src/base/config.h, with a kind that fits the type); "derived", by hand
-- into a value of its own (src/policy/settings.c); false, not at all (the
-- field is the mantle's alone).  tests/unit/test_contract.lua holds the
-- schema and the C field list to each other.
-- Section keys: name, doc, optional (nil in settings when not given),
-- fields (ordered), check (whole-section), example.

-- registry { ttl }'s default; announce { ttl } defaults to half of it
local REGISTRY_TTL = 60

M.sections = {
  {
    name = "announce", optional = true,
    -- info is sent as TXT too: the whole record must fit in one packet
    check = function(v)
      local t = deep_copy(v.txt or {})
      t.info = v.info
      local ok, err = lmdisc.txt_check(t)
      if not ok then return nil, "info and txt together: " .. err end
      return true
    end,
    doc = "Announce this host's service on the LAN. Leave it out for an agent that only observes.",
    example = 'announce { port = 8000, info = "gemma-2b-it Q4_0", txt = { model = "gemma-2b-it" } }',
    fields = {
      { name = "port", type = "integer", required = true, min = 1, max = 65535, example = "8000",
        doc = "TCP port of the service being announced." },
      { name = "info", type = "string", check = check_info,
        doc = "Human-readable description, announced as the TXT key 'info'." },
      { name = "name", type = "string", min_len = 1, max_len = 63,
        doc = "Service instance name; default: <hostname>:<port> (avahi renames it \"NAME #2\" on a collision)." },
      { name = "type", type = "string", default = lmdisc.SERVICE_TYPE, check = check_service_type,
        expect = "a service type string like \"_lmserv._tcp\"",
        doc = "DNS-SD service type, _name._tcp or _name._udp." },
      { name = "txt", type = "table", default = {}, check = check_txt, c = "derived",
        expect = "a table { key = \"value\" | number | true }",
        doc = "Extra TXT keys: { key = \"value\" | number | true }; each key=value at most 255 bytes; keys beginning with lmd- are lmdisc's own and refused." },
      { name = "ttl", type = "number", min = 1, max = lmdisc.RECORD_TTL_MAX,
        doc = "TTL of the announced records in seconds (at most " .. lmdisc.RECORD_TTL_MAX .. ", avahi's longest, or a host that vanished would stay in caches for longer); default: half the registry's ttl (" .. REGISTRY_TTL // 2 .. " s), so every mDNS cache drops this host that soon after it vanishes (avahi's own defaults are 120 s SRV, 75 min PTR/TXT)." },
    },
  },
  {
    name = "registry",
    doc = "How long peers are remembered and which ones are listed.",
    fields = {
      { name = "ttl", type = "number", above = 0, max = 9000, default = REGISTRY_TTL,
        doc = "Longest time a peer that stopped answering stays listed: this agent publishes its records with half this TTL (unless announce.ttl), so every mDNS cache drops it that soon; avahi's cache maintenance confirms peers, no timer of ours." },
      { name = "include_self", type = "boolean", default = false,
        doc = "Also report this agent's own announcement as a peer." },
    },
  },
  {
    name = "policy",
    doc = "Limits for the policy's hooks, timers and callbacks; a hook over its limit is stopped and logged.",
    fields = {
      { name = "deadline", type = "number", above = 0, max = 10, default = 0.25,
        doc = "Seconds one hook call may run before it is stopped." },
      { name = "memory_mb", type = "number", min = 1, max = 65536, default = 32, check = check_memory,
        doc = "Memory the policy's Lua state may use, in MiB (at most what the machine has)." },
    },
  },
  {
    name = "api",
    doc = "The local API used by `lmdisc peers` and `lmdisc watch`.",
    fields = {
      { name = "socket", type = "string", min_len = 1, max_len = lmdisc.SOCKET_PATH_MAX, default = lmdisc.API_SOCKET,
        doc = "Path of the Unix socket the API listens on." },
      { name = "socket_mode", type = "integer", min = 0, max = 511, default = 432,
        expect = "an integer from 0 to 511 (file mode, e.g. 432 = 0660)",
        doc = "File mode of the socket (432 = 0660); in Lua, write octal as tonumber(\"660\", 8)." },
      { name = "listen", type = "string", check = check_listen, expect = "a string \"host:port\"",
        doc = "Also serve the API over TCP on \"host:port\"." },
      { name = "allow_remote", type = "boolean", default = false,
        doc = "Accept API clients from other hosts on the TCP listener (default: loopback only)." },
    },
  },
  {
    name = "health", optional = true,
    doc = "Check our own service; withdraw (or mark) the announcement while it is unhealthy.",
    example = 'health { http = "http://127.0.0.1:8000/health" }',
    check = exactly_one("health", "http", '"http://127.0.0.1:8000/health"', "tcp", "8000"),
    fields = {
      { name = "http", type = "string", check = check_url, expect = "a URL string like \"http://127.0.0.1:8000/health\"",
        doc = "URL to GET; any 2xx answer is healthy." },
      { name = "tcp", type = "integer", min = 1, max = 65535,
        doc = "Local TCP port that must accept connections." },
      { name = "interval", type = "number", min = 0.1, max = 3600, default = 2,
        doc = "Seconds between checks." },
      { name = "timeout", type = "number", min = 0.01, max = 60, default = 1,
        doc = "Seconds before one check counts as failed." },
      { name = "failures", type = "integer", min = 1, max = 100, default = 3,
        doc = "Consecutive failures before the service is unhealthy." },
      { name = "on_fail", type = "string", enum = { "withdraw", "status" }, default = "withdraw",
        doc = "withdraw: stop announcing while unhealthy (goodbye), announce again when it passes; status: keep announcing with TXT status=down." },
    },
  },
  {
    name = "checks", optional = true,
    doc = "Probe kept peers; a peer failing its probes leaves with reason \"unhealthy\".",
    example = 'checks { http = "/health" }',
    check = exactly_one("checks", "http", '"/health"', "tcp", "true"),
    fields = {
      { name = "tcp", type = "boolean",
        doc = "Probe by connecting to the peer's port." },
      { name = "http", type = "string", check = check_path, expect = "an HTTP path string like \"/health\"",
        doc = "Probe by GET of this path on the peer's host and port; any 2xx answer passes." },
      { name = "interval", type = "number", min = 0.1, max = 3600, default = 1,
        doc = "Seconds between probes of one peer (jittered by 10%; a new peer's first probe comes at a random moment within one interval)." },
      { name = "timeout", type = "number", min = 0.01, max = 60, default = 1,
        doc = "Seconds before one probe counts as failed." },
      { name = "failures", type = "integer", min = 1, max = 100, default = 2,
        doc = "Consecutive failed probes before the peer is unhealthy; with the defaults a vanished peer is noticed within about 4 s." },
      { name = "concurrency", type = "integer", min = 1, max = 256, default = 8,
        doc = "Probes in flight at once." },
    },
  },
  {
    name = "log",
    doc = "Logging of the agent (to stderr / the journal).",
    fields = {
      { name = "level", type = "string", enum = { "debug", "info", "warning", "error" }, default = "info",
        doc = "Least severe level that is written." },
    },
  },
  {
    name = "trust", optional = true,
    doc = "Signed announcements: this agent signs what it announces with its host key, and admits only peers whose signature a trusted fleet key certifies (see lmdisc keygen, lmdisc certify).",
    example = 'trust { key = "/etc/lmdisc/host.key", cert = "/etc/lmdisc/host.cert", fleet = { "/etc/lmdisc/fleet.pub" } }',
    fields = {
      { name = "key", type = "string", required = true, min_len = 1, example = '"/etc/lmdisc/host.key"',
        doc = "This host's secret key (lmdisc keygen), mode 0600, or 0640 with the agent's group (root:lmdisc under the Debian service); refused when others may read it." },
      { name = "cert", type = "string", required = true, min_len = 1, example = '"/etc/lmdisc/host.cert"',
        doc = "This host's certificate from the fleet key (lmdisc certify)." },
      { name = "fleet", type = "table", required = true, check = check_fleet, c = "derived",
        expect = "a list of paths { \"/etc/lmdisc/fleet.pub\", ... }",
        doc = "Fleet public keys whose certificates are trusted; several at once for key rotation." },
      { name = "require", type = "boolean", default = true,
        doc = "true: peers that are not trusted are kept out (no hooks, not listed, counted by reason); false: listed with trusted = false." },
      { name = "validity", type = "number", min = 60, max = 86400, default = 3600,
        doc = "Seconds a signature is valid; the agent signs again at half of it (a TXT update). A copy of a signed announcement replayed after its host stopped is trusted at most this long." },
      { name = "revoked", type = "string", min_len = 1, example = '"/etc/lmdisc/revoked"',
        doc = "A revocation list signed by a trusted fleet key (lmdisc certify --revoke): peers whose host key or certificate it names are untrusted. Watched: a new list takes effect within a second, without a reload; one issued before the list in force is refused." },
    },
  },
  {
    name = "wide_area", optional = true,
    doc = "Wide-area DNS-SD (RFC 6763 over unicast DNS): publish the announced service into a DNS domain on the site's DNS server with TSIG-signed RFC 2136 updates, and follow the domain's services as peers, so that hosts beyond the router find each other.",
    example = 'wide_area { domain = "sd.example.org", server = "10.0.0.53", key = "/etc/lmdisc/host.tsig" }',
    fields = {
      { name = "domain", type = "string", required = true, check = check_domain, example = '"sd.example.org"',
        expect = "a DNS domain string like \"sd.example.org\"",
        doc = "The DNS-SD domain (a zone on the server, or inside one) the records go into." },
      { name = "server", type = "string", check = check_ip, example = '"10.0.0.53"',
        expect = "an IPv4 or IPv6 address string like \"10.0.0.53\"",
        doc = "Address of the DNS server that takes the updates (the zone's primary); default: the primary named by the SOA record (MNAME) of the domain's zone, asked of the resolvers in /etc/resolv.conf when the agent starts." },
      { name = "key", type = "string", required = true, min_len = 1, example = '"/etc/lmdisc/host.tsig"',
        doc = "TSIG key file in BIND key-file syntax (tsig-keygen; hmac-sha256, hmac-sha512 or hmac-sha1), mode 0600, or 0640 with the agent's group (root:lmdisc under the Debian service); refused when others may read it; the server must grant it this host's names." },
      { name = "lease", type = "integer", min = 10, max = 86400, default = 900,
        doc = "Seconds the records live without a refresh; the agent refreshes them at about half of it (jittered) with the same records (no change to the domain) and writes its liveness record INSTANCE.HOST._live.DOMAIN TXT lmd-live=SEQ/LEASE (SEQ new at every refresh; the host's key needs a grant there, examples/wide-area/), and sends it as the RFC 9664 update lease. Sweepers (agents with sweep_key) remove the records of a service whose liveness record has not changed for LEASE seconds on their own clock; every browser then sees it leave (at most lease + the sweeper's poll + the browser's poll after a crash)." },
      { name = "poll", type = "number", min = 0.1, max = 3600, default = 10,
        doc = "Seconds between checks of the domain for changes (its SOA serial, one small signed query; on a change the domain's services are read again, by IXFR, and joins, updates and leaves reported); fractions allowed (0.5). Refreshes do not change the domain (they go to the liveness zone), so a short poll costs one SOA query per poll and nothing more. Agents with sweep_key check the liveness zone at the same rate." },
      { name = "read", type = "table", check = check_read, c = "derived", example = '{ "10.1.0.53", "10.2.0.53" }',
        expect = "a list of IPv4 or IPv6 address strings like { \"10.1.0.53\" }",
        doc = "Servers to read the domain from (secondaries of the zone, nearest first): SOA polls, transfers and queries go to the first that answers, updates to the primary (server); when one stops answering the next is used, the primary last. A secondary learns of each change by NOTIFY in milliseconds, so a subnet with its own secondary gets sub-second joins with cheap polls. Default: the primary alone." },
      { name = "notify", type = "integer", min = 1, max = 65535, example = "5353",
        doc = "UDP port on which the agent takes NOTIFY messages (RFC 1996) for the domain, from the server it reads from (BIND: also-notify { ADDR port PORT key KEY; }, Knot: a notify remote with this host's key): a NOTIFY signed by this host's key (wide_area.key) makes it read the domain at once instead of at its next poll, and it answers signed; unsigned or badly signed ones are dropped unanswered and counted (lmdisc_dns_notify_total), and at most 20 a second are looked at. Pays when poll is long (seconds) and joins must be seen sooner; with a poll of 0.5 s to a server in the subnet it saves at most that. The port must be free: the agent does not start otherwise. Default: none (polls only)." },
      { name = "also_notify", type = "table", check = check_read, c = "derived", example = '{ "10.1.0.53", "10.2.0.53" }',
        expect = "a list of IPv4 or IPv6 address strings like { \"10.1.0.53\" }",
        doc = "Secondaries of the zone that this agent itself NOTIFYs (RFC 1996, signed with wide_area.key) after each update of its own that changes the domain (a join, a TXT change, a leave; never a refresh), so that they transfer the change from the primary at once rather than when the primary's own NOTIFY comes (Knot sends it 1 s after a dynamic update, BIND at once with notify-delay 0). Each secondary must accept a NOTIFY signed by this host's key (BIND: allow-notify { key KEY; }; Knot: an acl with action notify and the key; examples/wide-area/); one that refuses it is harmless (counted, said once). At most one NOTIFY in flight per secondary and 10 a second, never retried: lmdisc_dns_notify_sent_total counts them by result. Pays with a Knot primary and readers on secondaries; not with a BIND primary (notify-delay 0), whose own NOTIFY already leaves at once: there it saves nothing, and a Knot secondary notified twice may take the next change a second late. Default: none." },
      { name = "host", type = "string", check = check_label, expect = "a DNS label string like \"h1\"",
        doc = "The SRV target is HOST.DOMAIN with the host's A/AAAA; default: this machine's short host name." },
      { name = "sweep_key", type = "string", min_len = 1, example = '"/etc/lmdisc/sweeper.tsig"',
        doc = "TSIG key file (as key) that may delete any service's PTR, SRV and TXT in the domain and TXT in its liveness zone _live.DOMAIN: with it, the agent follows the liveness zone and removes the records of services whose liveness record stopped changing for their lease (crashed hosts): a compare-and-delete of the liveness record (applied only if it is still the stale one, so a refresh racing it is never lost), then of the records. Give it to two or three agents: a browser's crash detection is theirs (without any, a crashed host's records stay until removed by hand)." },
    },
  },
  {
    name = "mdns",
    doc = "Multicast DNS on the local link (avahi-daemon).",
    fields = {
      { name = "enabled", type = "boolean", default = true,
        doc = "false: neither announce nor browse over mDNS, and avahi-daemon is not needed (networks without multicast, with wide_area { })." },
    },
  },
  {
    name = "watchdog",
    doc = "The agent's last line of defence: if its event loop stops turning (C code that does not return), it exits so that avahi-daemon withdraws its announcements and the supervisor restarts it.",
    fields = {
      { name = "timeout", type = "number", min = 1, max = 300, default = 5,
        doc = "Seconds the loop may go without turning (at least twice policy.deadline plus one second is used); under systemd, WatchdogSec= is honoured as well." },
    },
  },
}

-- name -> section, and per section name -> field
local SECTION = {}
for _, s in ipairs(M.sections) do
  SECTION[s.name] = s
  s.field = {}
  s.field_names = {}
  for _, f in ipairs(s.fields) do
    s.field[f.name] = f
    s.field_names[#s.field_names + 1] = f.name
  end
end
M.section = SECTION
M.directive_names = {}
for _, s in ipairs(M.sections) do M.directive_names[#M.directive_names + 1] = s.name end

---------------------------------------------------------------------------
-- validation

local function fmt_num(x) return (("%.14g"):format(x)) end

--- What a field accepts, in words ("an integer from 1 to 65535").
function M.expect(f)
  if f.expect then return f.expect end
  if f.enum then
    local q = {}
    for i, v in ipairs(f.enum) do q[i] = ("%q"):format(v) end
    return "one of " .. table.concat(q, ", ")
  end
  if f.type == "integer" or f.type == "number" then
    local what = f.type == "integer" and "an integer" or "a number"
    if f.min and f.max then return ("%s from %s to %s"):format(what, fmt_num(f.min), fmt_num(f.max)) end
    local parts = {}
    if f.above then parts[#parts + 1] = "> " .. fmt_num(f.above) end
    if f.min then parts[#parts + 1] = ">= " .. fmt_num(f.min) end
    if f.max then parts[#parts + 1] = "<= " .. fmt_num(f.max) end
    if #parts > 0 then return what .. " " .. table.concat(parts, " and ") end
    return what
  elseif f.type == "string" then
    if f.min_len and f.max_len then return ("a string of %d to %d bytes"):format(f.min_len, f.max_len) end
    if f.min_len then return "a non-empty string" end
    return "a string"
  elseif f.type == "boolean" then
    return "a boolean (true or false)"
  end
  return "a " .. f.type
end

-- Returns the normalised value, or nil and the message after "section.".
local function check_field(f, v)
  local bad = function() return nil, ("%s must be %s, got %s"):format(f.name, M.expect(f), describe(v)) end
  local t = type(v)
  if f.type == "integer" then
    if t ~= "number" then return bad() end
    local i = math.tointeger(v)
    if not i then return bad() end
    v = i
  elseif t ~= f.type then
    return bad()
  end
  if t == "number" then
    if (f.min and v < f.min) or (f.max and v > f.max) or (f.above and v <= f.above) or v ~= v then
      return bad()
    end
  elseif t == "string" then
    if (f.min_len and #v < f.min_len) or (f.max_len and #v > f.max_len) then return bad() end
    if f.enum then
      local found = false
      for _, e in ipairs(f.enum) do found = found or e == v end
      if not found then
        local s = M.suggest(v, f.enum)
        local _, msg = bad()
        return nil, msg .. (s and (" (did you mean %q?)"):format(s) or "")
      end
    end
  end
  if f.check then
    local ok, reason = f.check(v)
    if not ok then
      reason = tostring(reason)
      return nil, f.name .. (reason:match("^must ") and " " or ": ") .. reason
    end
  end
  if f.type == "table" then
    v = deep_copy(v)
    -- TXT numbers travel as text; settle that here so every reader agrees.
    if f.name == "txt" then
      for k, x in pairs(v) do if type(x) == "number" then v[k] = tostring(x) end end
    end
  end
  return v
end

-- Validate the table given to a directive.  Returns values or nil, message
-- (the message lacks the FILE:LINE prefix).
local function check_section(sec, given)
  if type(given) ~= "table" then
    return nil, ("%s takes a table, e.g. %s, got %s"):format(sec.name,
      sec.example or (sec.name .. " { ... }"), describe(given))
  end
  local values = {}
  for k, v in pairs(given) do
    if type(k) ~= "string" then
      return nil, ("%s: unexpected value %s at position %s; write fields as name = value"):format(
        sec.name, describe(v), tostring(k))
    end
    local f = sec.field[k]
    if not f then
      local s = M.suggest(k, sec.field_names)
      return nil, ("%s: unknown key '%s' %s"):format(sec.name, k,
        s and ("(did you mean '" .. s .. "'?)") or ("(known keys: " .. table.concat(sec.field_names, ", ") .. ")"))
    end
    local nv, err = check_field(f, v)
    if nv == nil then return nil, sec.name .. "." .. err end
    values[k] = nv
  end
  return values
end

-- Required fields and whole-section rules, once the values are final.
local function check_complete(sec, values)
  for _, f in ipairs(sec.fields) do
    if f.required and values[f.name] == nil then
      return nil, ("%s.%s is missing: give %s, e.g. %s { %s = %s }"):format(sec.name, f.name, M.expect(f),
        sec.name, f.name, f.example or "...")
    end
  end
  if sec.check then
    local ok, reason = sec.check(values)
    if not ok then return nil, sec.name .. " " .. reason end
  end
  return true
end

local function fill_defaults(sec, values)
  local out = {}
  for _, f in ipairs(sec.fields) do
    local v = values[f.name]
    if v == nil then v = deep_copy(f.default) end
    out[f.name] = v
  end
  return out
end

---------------------------------------------------------------------------
-- the collector

-- FILE:LINE of the function `level` levels above the caller; FILE is the
-- real path (short_src would abbreviate long ones).
local function where(level)
  local info = debug.getinfo(level + 1, "Sl")
  if not info then return "?" end
  local src = info.source:sub(1, 1) == "@" and info.source:sub(2) or info.short_src
  if info.currentline and info.currentline > 0 then return src .. ":" .. info.currentline end
  return src
end
-- (not a tail call: that would remove this function's frame and shift levels)
M.where = function(level)
  local w = where((level or 1) + 1)
  return w
end

local Collector = {}
Collector.__index = Collector

--- A collector for one configuration chunk.  chunkname: "@path" or a path.
function M.new_collector(chunkname)
  local c = setmetatable({
    file = chunkname and tostring(chunkname):gsub("^[@=]", "") or "?",
    given = {}, -- section name -> validated values
    at = {},    -- section name -> "FILE:LINE" of the directive call
    err = nil,  -- the first directive error, without a traceback
    closed = false,
    directives = {},
  }, Collector)
  for _, sec in ipairs(M.sections) do
    c.directives[sec.name] = function(tbl, ...)
      local at = where(2)
      if c.closed then
        error(at .. ": " .. sec.name .. " { } configures the agent and can only be used at the top level "
          .. "of the configuration file, not inside hooks, timers or callbacks", 0)
      end
      local msg
      if select("#", ...) > 0 then
        msg = sec.name .. " takes one table, e.g. " .. (sec.example or (sec.name .. " { ... }"))
      elseif c.given[sec.name] then
        msg = ("%s given twice (first at %s); merge them into one %s { ... }"):format(
          sec.name, c.at[sec.name], sec.name)
      else
        local values, err = check_section(sec, tbl)
        if values then
          local ok, cerr = check_complete(sec, values)
          if ok then
            c.given[sec.name], c.at[sec.name] = values, at
            return
          end
          msg = cerr
        else
          msg = err
        end
      end
      msg = at .. ": " .. msg
      c.err = c.err or msg
      error(msg, 0)
    end
  end
  return c
end

--- Put the directive functions into env.
function Collector:install(env)
  for k, f in pairs(self.directives) do env[k] = f end
end

--- Directives called from now on raise (they would change nothing).
function Collector:close()
  self.closed = true
end

--- settings | nil, err.  overrides: { section = { field = value } } applied
-- over what the file gave (used by lmdisc.testing and command-line flags).
function Collector:finish(overrides)
  if self.err then return nil, self.err end
  local settings = {}
  for _, sec in ipairs(M.sections) do
    local values, at = self.given[sec.name], self.at[sec.name]
    local o = overrides and overrides[sec.name]
    if o ~= nil then
      local ov, err = check_section(sec, o)
      if not ov then return nil, "settings override: " .. err end
      values = values and deep_copy(values) or {}
      for k, v in pairs(ov) do values[k] = v end
      local ok, cerr = check_complete(sec, values)
      if not ok then return nil, "settings override: " .. cerr end
      at = at or "settings override"
    end
    if values or not sec.optional then
      settings[sec.name] = fill_defaults(sec, values or {})
    end
  end
  if overrides then
    for k in pairs(overrides) do
      if not SECTION[k] then
        local s = M.suggest(k, M.directive_names)
        return nil, ("settings override: unknown section '%s'%s"):format(tostring(k),
          s and (" (did you mean '" .. s .. "'?)") or "")
      end
    end
  end
  if settings.mdns and not settings.mdns.enabled and not settings.wide_area and settings.announce then
    return nil, ("%s: mdns { enabled = false } with announce { } but no wide_area { }: the service would be "
      .. "announced nowhere; add wide_area { domain = ..., key = ... } or enable mDNS"):format(
      self.at.mdns or self.file)
  end
  if settings.health and not settings.announce then
    return nil, ("%s: health checks our own announced service, but there is no announce { port = ... }; "
      .. "add one or remove health"):format(self.at.health or self.file)
  end
  return settings
end

--- Settings of an empty configuration.
function M.defaults()
  return M.new_collector("(defaults)"):finish()
end

--- The configuration reference as Markdown, generated from the schema.
function M.reference()
  local out = { "# lmdisc configuration reference", "" }
  for _, sec in ipairs(M.sections) do
    out[#out + 1] = ("## %s { ... }%s"):format(sec.name, sec.optional and " (optional)" or "")
    out[#out + 1] = ""
    out[#out + 1] = sec.doc
    out[#out + 1] = ""
    out[#out + 1] = "| key | accepts | default | meaning |"
    out[#out + 1] = "|---|---|---|---|"
    for _, f in ipairs(sec.fields) do
      local def = f.required and "required" or (f.default == nil and "-")
        or (type(f.default) == "string" and ("%q"):format(f.default))
        or (type(f.default) == "table" and "{}") or tostring(f.default)
      local function cell(s) return (tostring(s):gsub("|", "\\|")) end
      out[#out + 1] = ("| %s | %s | %s | %s |"):format(f.name, cell(M.expect(f)), cell(def), cell(f.doc))
    end
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

return M

-- Generate lmdisc.conf(5) from lua/lmdisc/config.lua's schema, so the
-- reference can never disagree with what `lmdisc check` accepts (and
-- tests/unit/test_docs.lua checks that every section and field is in it).
-- Usage: lua5.4 config-man.lua OUT VERSION LUA_DIR MODULE_DIR
local out_path, version = arg[1], arg[2] or ""
package.path = arg[3] .. "/?.lua;" .. package.path
package.cpath = arg[4] .. "/?.so;" .. package.cpath
local config = require "lmdisc.config"

local function esc(s)
  s = tostring(s):gsub("\\", "\\e"):gsub("^%.", "\\&."):gsub("\n%.", "\n\\&."):gsub("^'", "\\&'")
  return s
end

local o = {}
local function w(s) o[#o + 1] = s end
w(('.TH LMDISC.CONF 5 "" "lmdisc %s" "File Formats"'):format(version))
w(".SH NAME")
w("lmdisc.conf \\- configuration and policy file of the lmdisc agent (agent.lua)")
w(".SH SYNOPSIS")
w(".nf")
for line in ([[
announce { port = 8000, info = "gemma-2b-it Q4_0", txt = { model = "gemma-2b-it" } }
registry { ttl = 60 }
function filter(peer) return peer.txt.model == "gemma-2b-it" end
function info(peer) return peer.txt.model end
function on_join(peer) lmdisc.log.info("joined %s", peer.name) end
function on_update(peer, old, changes) end
function on_leave(peer, reason) end]]):gmatch("[^\n]+") do w(esc(line)) end
w(".fi")
w(".SH DESCRIPTION")
w("The configuration of \\fBlmdisc agent\\fR is a Lua 5.4 file that is both settings and policy. "
  .. "Settings are given by calling the directives below, each at most once, at the top level. "
  .. "The policy is a set of global functions (hooks). "
  .. "\\fBlmdisc check\\fR validates a file and reports unknown keys, wrong types and syntax errors as FILE:LINE: message.")
for _, sec in ipairs(config.sections) do
  w((".SH %s { ... }%s"):format(sec.name:upper(), sec.optional and " (optional)" or ""))
  w(esc(sec.doc))
  if sec.example then
    w(".PP")
    w(".nf")
    w(esc(sec.example))
    w(".fi")
  end
  for _, f in ipairs(sec.fields) do
    local def
    if f.required then def = ", required"
    elseif type(f.default) == "string" then def = ", default " .. ("%q"):format(f.default)
    elseif type(f.default) == "table" then def = ", default {}"
    elseif f.default ~= nil then def = ", default " .. tostring(f.default)
    else def = "" end
    w(".TP")
    w(("\\fB%s\\fR (%s%s)"):format(f.name, esc(config.expect(f)), esc(def)))
    w(esc(f.doc))
  end
end
w(".SH HOOKS")
for _, h in ipairs({
  {"filter(peer)", "Return true to keep the peer. An error keeps the previous verdict (a new peer is not kept)."},
  {"info(peer)", "Return the string that is the peer's info (default: its TXT info)."},
  {"on_join(peer)", "A peer the policy keeps has appeared."},
  {"on_update(peer, old, changes)", "A kept peer changed; changes lists \"host\", \"port\", \"txt\", \"addresses\", \"info\", \"sources\"."},
  {"on_leave(peer, reason)", "A kept peer is gone: \"goodbye\", \"expired\", \"filtered\", \"unhealthy\"."},
}) do
  w(".TP")
  w("\\fB" .. esc(h[1]) .. "\\fR")
  w(esc(h[2]))
end
w(".PP")
w("A peer is a table with name, type, domain, host, port, info, addresses (the nearest first: those seen "
  .. "over mDNS, then those from a wide-area DNS domain), interfaces, txt, local, self, sources (what it is "
  .. "currently seen through: {\"mdns\"}, {\"dns\"} or {\"mdns\", \"dns\"}), routable, trusted, signer, "
  .. "conflict, first_seen and last_seen. Hooks run under a deadline and a memory cap (see POLICY); an error is logged "
  .. "with its traceback and the agent goes on.")
w(".SH FUNCTIONS")
w("lmdisc.log.debug/info/warn/error(fmt, ...), lmdisc.peers(), lmdisc.REGISTRY:list_alive(), lmdisc.self(), "
  .. "lmdisc.set_txt{key = value | false}, lmdisc.timer(seconds, fn), lmdisc.every(seconds, fn), "
  .. "lmdisc.spawn(argv, {env =, stdin =, on_exit = fn(code, signal)}), lmdisc.now(), lmdisc.escape(bytes).")
w(".SH FILES")
w(".TP")
w("\\fI/etc/lmdisc/agent.lua\\fR")
w("The configuration the Debian package installs and its systemd unit runs (\\fBlmdisc agent -c\\fR); "
  .. "\\fBsystemctl reload lmdisc\\fR makes the agent read it again (SIGHUP).")
w(".SH SEE ALSO")
w("\\fBlmdisc\\fR(1), \\fBlmdisc-api\\fR(7), \\fBavahi-daemon\\fR(8)")
local f = assert(io.open(out_path, "w"))
f:write(table.concat(o, "\n"), "\n")
f:close()

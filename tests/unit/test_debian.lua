-- The Debian packaging's defaults, from the source tree (no package build,
-- no network): the configuration /etc/lmdisc/agent.lua announces nothing
-- and says how to, the unit is hardened (systemd-analyze security reads it
-- offline) yet keeps what the agent needs, the upstream example unit is the
-- same, and the examples write only where the unit lets them.
local lu = require "luaunit"
local B = require "bin"
local SRC = assert(os.getenv("LMDISC_SRC"), "set LMDISC_SRC to the source tree")

local function read(rel)
    local f = assert(io.open(SRC .. "/" .. rel, "rb"))
    local s = f:read("a")
    f:close()
    return s
end

local function sh_out(cmd)
    local f = io.popen(cmd .. " 2>&1; echo \"rc=$?\"")
    local out = f:read("a")
    f:close()
    return tonumber(out:match("rc=(%d+)\n?$")), out
end

-- [Service] settings of a unit: name -> list of values, in order
local function unit_settings(text)
    local out, section = {}, nil
    for line in text:gmatch("[^\n]+") do
        local s = line:match("^%[(.+)%]$")
        if s then
            section = s
        elseif section and not line:find("^%s*#") then
            local k, v = line:match("^([%w]+)=(.*)$")
            if k then
                local key = section .. "." .. k
                out[key] = out[key] or {}
                table.insert(out[key], v)
            end
        end
    end
    return out
end

TestDebian = {}

function TestDebian:test_the_installed_configuration_announces_nothing_and_says_how()
    lu.assertStrContains(read("debian/lmdisc.install"), "debian/agent.lua etc/lmdisc/")
    local code, out = B.run("check " .. B.sh(SRC .. "/debian/agent.lua"))
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "observes only (no announce)")
    local text = read("debian/agent.lua")
    -- how: the line to uncomment, how servers register, check and reload
    lu.assertStrMatches(text, ".*\n%-%- announce { port = %d+.*")
    lu.assertStrContains(text, "announce_self(8000")
    lu.assertStrContains(text, "PUT /v1/services/NAME")
    lu.assertStrContains(text, "lmdisc check --user lmdisc /etc/lmdisc/agent.lua")
    lu.assertStrContains(text, "systemctl reload lmdisc")
    lu.assertStrContains(text, "chown root:lmdisc FILE; chmod 640 FILE")
    -- and with the announce line uncommented, it announces that
    local on = os.tmpname() .. ".lua"
    local f = assert(io.open(on, "w"))
    f:write((text:gsub("\n%-%- (announce { port = )", "\n%1")))
    f:close()
    code, out = B.run("check " .. B.sh(on))
    os.remove(on)
    lu.assertEquals(code, 0, out)
    lu.assertStrContains(out, "announces port 8000")
end

function TestDebian:test_the_unit_keeps_what_the_agent_needs()
    local u = unit_settings(read("debian/lmdisc.service"))
    lu.assertEquals(u["Service.User"], { "lmdisc" })
    lu.assertEquals(u["Service.Type"], { "notify" })
    lu.assertEquals(u["Service.ExecStartPre"], { "/usr/bin/lmdisc check /etc/lmdisc/agent.lua" })
    -- After= a target needs Wants= it too, or nothing pulls it in
    for _, t in ipairs({ "avahi-daemon.service", "network-online.target" }) do
        lu.assertStrContains(u["Unit.Wants"][1], t)
        lu.assertStrContains(u["Unit.After"][1], t)
    end
    -- D-Bus and the API (AF_UNIX), probes and DNS (INET, INET6), addresses (NETLINK)
    local families = {}
    for fam in u["Service.RestrictAddressFamilies"][1]:gmatch("%S+") do families[fam] = true end
    lu.assertEquals(families, { AF_UNIX = true, AF_INET = true, AF_INET6 = true, AF_NETLINK = true })
    -- lmdisc.spawn: fork and exec are allowed (@process is in @system-service, and not denied)
    lu.assertEquals(u["Service.SystemCallFilter"][1], "@system-service")
    for _, f in ipairs(u["Service.SystemCallFilter"]) do lu.assertNotStrContains(f, "@process") end
    -- where the socket and a policy's files go stays writable
    lu.assertEquals(u["Service.RuntimeDirectory"], { "lmdisc" })
    lu.assertEquals(u["Service.StateDirectory"], { "lmdisc" })
    lu.assertEquals(u["Service.ProtectSystem"], { "strict" })
    -- /proc/loadavg (examples/least-loaded) stays readable
    lu.assertNil(u["Service.ProcSubset"])
end

function TestDebian:test_systemd_analyze_rates_the_unit_ok_or_better()
    local code, out = sh_out("systemd-analyze --version")
    local version = code == 0 and tonumber(out:match("systemd (%d+)"))
    if not version or version < 250 then
        lu.skip("systemd-analyze security --offline=yes needs systemd 250 or later: " .. out)
    end
    for _, unit in ipairs({ "debian/lmdisc.service", "examples/systemd/lmdisc.service" }) do
        -- it reads a unit by its file name: a copy named lmdisc.service
        local dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -m 700 " .. B.sh(dir)))
        assert(os.execute(("cp %s %s/lmdisc.service"):format(B.sh(SRC .. "/" .. unit), B.sh(dir))))
        code, out = sh_out(("cd %s && systemd-analyze security --offline=yes --no-pager ./lmdisc.service")
            :format(B.sh(dir)))
        os.execute("rm -rf " .. B.sh(dir))
        local score, level = out:match("Overall exposure level for lmdisc%.service: ([%d%.]+) (%u+)")
        lu.assertNotNil(score, unit .. ": " .. out)
        print(("    %s: exposure %s %s"):format(unit, score, level))
        -- "OK" is below 5.0; the unit scored 8.6 "EXPOSED" before its hardening
        lu.assertTrue(tonumber(score) <= 2.0, ("%s: exposure %s %s"):format(unit, score, level))
        lu.assertTrue(level == "OK" or level == "SAFE" or level == "PERFECT", unit .. ": " .. level)
    end
end

function TestDebian:test_the_upstream_unit_is_the_debian_one()
    local function body(rel)
        local s = read(rel)
        return (s:sub(s:find("[Unit]", 1, true)):gsub("/usr/local/bin/", "/usr/bin/"))
    end
    lu.assertEquals(body("examples/systemd/lmdisc.service"), body("debian/lmdisc.service"))
end

-- What examples write is where the unit lets them (its RuntimeDirectory
-- and StateDirectory): never /tmp, which is private to the service.
function TestDebian:test_examples_write_where_the_unit_allows()
    local writes = {
        { "examples/upstream-file/agent.lua", 'file = "([^"]+)"' },
        { "examples/registered-servers/agent.lua", 'or "([^"]+)"' },
    }
    for _, w in ipairs(writes) do
        local path = read(w[1]):match(w[2])
        lu.assertNotNil(path, w[1])
        lu.assertTrue(path:find("^/var/lib/lmdisc/") ~= nil or path:find("^/run/lmdisc/") ~= nil, w[1] .. ": " .. path)
    end
    lu.assertStrContains(read("examples/upstream-file/lmdisc-nginx-reload.path"),
        "PathChanged=/var/lib/lmdisc/upstream.conf")
end

os.exit(lu.LuaUnit.run())

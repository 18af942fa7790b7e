-- The C registry: merging instances into peers, event order, ttl expiry,
-- driven with simulated instances and a fake clock.
local lu = require "luaunit"
local lmdisc = require "lmdisc"
local cjson = require "cjson"

local function inst(t)
    t.name = t.name or "a:8000"
    t.host = t.host or "a.local"
    t.port = t.port or 8000
    t.proto = t.proto or 4
    t.address = t.address or (t.proto == 4 and "10.0.0.1" or "fd00::1")
    t.txt = t.txt or {info = "gemma"}
    return t
end

local function new(cfg)
    local events, confirms, asked = {}, {}, {}
    local r = lmdisc.registry_new(cfg or {ttl = 60}, function(kind, peer, old, changes, reason)
        events[#events + 1] = {kind = kind, name = peer.name, peer = peer, old = old,
                               changes = table.concat(changes, ","), reason = reason}
    end, function(peer, ifindex, proto)
        confirms[#confirms + 1] = peer.name
        local k = peer.name .. "/" .. ifindex .. "/" .. proto
        asked[k] = (asked[k] or 0) + 1
    end)
    return r, events, confirms, asked
end

TestRegistry = {}

function TestRegistry:test_join_once_for_ipv4_and_ipv6_on_two_interfaces()
    local r, ev = new()
    r:seen(inst{proto = 4, address = "10.0.0.1"}, 1)
    r:seen(inst{proto = 6, address = "fd00::1"}, 1)
    r:seen(inst{proto = 4, ifindex = 3, ifname = "eth1", address = "192.168.1.1"}, 1)
    lu.assertEquals(#ev, 3)
    lu.assertEquals(ev[1].kind, "join")
    lu.assertEquals(ev[2].kind, "update")
    lu.assertEquals(ev[2].changes, "addresses")
    lu.assertEquals(ev[3].changes, "addresses")
    lu.assertEquals(r:count(), 1)
    local p = r:get("a:8000")
    lu.assertEquals(p.addresses, {"10.0.0.1", "192.168.1.1", "fd00::1"})
    lu.assertEquals(p.interfaces, {"eth0", "eth1"})
    lu.assertEquals(p.info, "gemma")
end

function TestRegistry:test_same_data_again_is_no_event()
    local r, ev = new()
    r:seen(inst{}, 1)
    r:seen(inst{}, 2)
    lu.assertEquals(#ev, 1)
end

-- A resolver's answer that says what the instance holds is a refresh
-- (nothing built, copied or verified); one byte of difference anywhere in
-- the TXT record is not.
function TestRegistry:test_a_refresh_is_no_event_and_any_txt_difference_is_one()
    local r, ev = new()
    local txt = {info = "gemma", flag = true, empty = "", bin = "a=b\0c"}
    r:seen(inst{txt = txt}, 1)
    for t = 2, 4 do
        r:seen(inst{txt = txt}, t)
    end
    lu.assertEquals(#ev, 1)
    lu.assertEquals(r:next_deadline(), 64) -- each refresh renewed the ttl
    local variants = {
        {info = "gemma", flag = true, empty = "", bin = "a=b\0d"},
        {info = "gemma", flag = "", empty = "", bin = "a=b\0d"},
        {info = "gemma", flag = "", empty = true, bin = "a=b\0d"},
        {info = "gemma", flag = "", empty = true},
    }
    for i, v in ipairs(variants) do
        r:seen(inst{txt = v}, 4 + i)
        lu.assertEquals(#ev, 1 + i)
        lu.assertEquals(ev[#ev].changes, "txt")
        r:seen(inst{txt = v}, 4 + i) -- and that again: a refresh
        lu.assertEquals(#ev, 1 + i)
    end
end

-- The IPv4 and IPv6 instances of one service answer in turns: refreshes,
-- no event; but an instance whose TXT differs from the speaker's speaks
-- when it is the newest again.
function TestRegistry:test_instances_refreshed_in_turns_and_one_that_differs()
    local r, ev = new()
    r:seen(inst{proto = 4, address = "10.0.0.1"}, 1)
    r:seen(inst{proto = 6, address = "fd00::1"}, 1)
    lu.assertEquals(#ev, 2) -- the join, the IPv6 address
    for t = 2, 5 do
        r:seen(inst{proto = 4, address = "10.0.0.1"}, t)
        r:seen(inst{proto = 6, address = "fd00::1"}, t)
    end
    lu.assertEquals(#ev, 2)
    r:seen(inst{proto = 6, address = "fd00::1", txt = {info = "llama"}}, 6)
    lu.assertEquals(ev[3].changes, "txt")
    lu.assertEquals(r:get("a:8000").info, "llama")
    r:seen(inst{proto = 4, address = "10.0.0.1"}, 7) -- its older TXT, newest now
    lu.assertEquals(#ev, 4)
    lu.assertEquals(ev[4].changes, "txt")
    lu.assertEquals(r:get("a:8000").info, "gemma")
    lu.assertEquals(r:get("a:8000").addresses, {"10.0.0.1", "fd00::1"})
end

-- The same record again from an instance that does not speak for the peer
-- makes it the newest, and so the one that speaks.
function TestRegistry:test_a_refresh_of_the_other_host_makes_it_speak()
    local r, ev = new()
    r:seen(inst{proto = 4, address = "10.0.0.2", host = "h2.local"}, 1)
    r:seen(inst{proto = 4, ifindex = 3, ifname = "eth1", address = "10.0.0.3", host = "h3.local"}, 2)
    lu.assertEquals(r:get("a:8000").host, "h3.local")
    r:seen(inst{proto = 4, address = "10.0.0.2", host = "h2.local"}, 3)
    local p = r:get("a:8000")
    lu.assertEquals(p.host, "h2.local")
    lu.assertEquals(p.addresses, {"10.0.0.2"})
    lu.assertTrue(p.conflict)
    lu.assertEquals(ev[#ev].kind, "update")
    lu.assertEquals(ev[#ev].changes, "host,addresses")
    lu.assertEquals(ev[#ev].old.host, "h3.local")
end

function TestRegistry:test_txt_and_port_changes_are_updates_with_old_values()
    local r, ev = new()
    r:seen(inst{}, 1)
    r:seen(inst{txt = {info = "llama"}, port = 9000}, 2)
    lu.assertEquals(ev[2].kind, "update")
    lu.assertEquals(ev[2].changes, "port,txt")
    lu.assertEquals(ev[2].old.info, "gemma")
    lu.assertEquals(ev[2].peer.info, "llama")
    lu.assertEquals(ev[2].peer.port, 9000)
end

function TestRegistry:test_leaves_only_when_last_instance_is_gone()
    local r, ev = new()
    r:seen(inst{proto = 4}, 1)
    r:seen(inst{proto = 6}, 1)
    r:gone(inst{proto = 4}, "goodbye")
    lu.assertEquals(ev[#ev].kind, "update")
    lu.assertEquals(r:get("a:8000").addresses, {"fd00::1"})
    r:gone(inst{proto = 6}, "goodbye")
    lu.assertEquals(ev[#ev].kind, "leave")
    lu.assertEquals(ev[#ev].reason, "goodbye")
    lu.assertEquals(r:count(), 0)
    lu.assertFalse(r:gone(inst{}, "goodbye"))
end

function TestRegistry:test_event_order_across_peers()
    local r, ev = new()
    r:seen(inst{name = "b"}, 1)
    r:seen(inst{name = "a"}, 1)
    r:gone(inst{name = "b"}, "goodbye")
    r:seen(inst{name = "b"}, 2)
    local seq = {}
    for i, e in ipairs(ev) do seq[i] = e.kind .. ":" .. e.name end
    lu.assertEquals(seq, {"join:b", "join:a", "leave:b", "join:b"})
    local names = {}
    for i, p in ipairs(r:snapshot()) do names[i] = p.name end
    lu.assertEquals(names, {"a", "b"})
end

function TestRegistry:test_ttl_asks_for_confirmation_then_expires()
    local r, ev, confirms = new{ttl = 60, confirm_grace = 10}
    r:seen(inst{}, 100)
    lu.assertEquals(r:next_deadline(), 160)
    r:tick(159.9)
    lu.assertEquals(#confirms, 0)
    r:tick(160)
    lu.assertEquals(confirms, {"a:8000"})
    lu.assertEquals(r:next_deadline(), 170)
    r:tick(170)
    lu.assertEquals(ev[#ev].kind, "leave")
    lu.assertEquals(ev[#ev].reason, "expired")
    lu.assertIsNil(r:next_deadline())
end

function TestRegistry:test_confirmation_renews_ttl()
    local r, ev, confirms = new{ttl = 60, confirm_grace = 10}
    r:seen(inst{}, 100)
    r:tick(160)
    r:seen(inst{}, 165) -- the network answered
    lu.assertEquals(r:next_deadline(), 225)
    r:tick(200)
    lu.assertEquals(#ev, 1)
    lu.assertEquals(#confirms, 1)
end

function TestRegistry:test_confirm_callback_may_answer_synchronously()
    local r
    local events = {}
    r = lmdisc.registry_new({ttl = 5}, function(kind, peer) events[#events + 1] = kind end,
                            function(peer) r:seen(inst{name = peer.name}, 5) end)
    r:seen(inst{}, 0)
    r:tick(5)
    lu.assertEquals(events, {"join"})
    lu.assertEquals(r:next_deadline(), 10)
end

function TestRegistry:test_no_ttl_means_no_deadline()
    local r = new{ttl = 0}
    r:seen(inst{}, 1)
    lu.assertIsNil(r:next_deadline())
end

function TestRegistry:test_own_services_skipped_or_marked_self()
    local r, ev = new{ttl = 60}
    r:seen(inst{self = true, ["local"] = true}, 1)
    lu.assertEquals(#ev, 0)
    local r2, ev2 = new{ttl = 60, include_self = true}
    r2:seen(inst{self = true, ["local"] = true}, 1)
    lu.assertEquals(#ev2, 1)
    lu.assertIsTrue(ev2[1].peer.self)
    lu.assertIsTrue(ev2[1].peer["local"])
end

function TestRegistry:test_verdicts_filter_snapshot_and_replace_info()
    local r = new()
    r:seen(inst{name = "a"}, 1)
    r:seen(inst{name = "b"}, 1)
    r:set_verdict("a", false)
    r:set_verdict("b", true, "policy info")
    local kept = r:snapshot(true)
    lu.assertEquals(#kept, 1)
    lu.assertEquals(kept[1].name, "b")
    lu.assertEquals(kept[1].info, "policy info")
    lu.assertEquals(#r:snapshot(false), 2)
    lu.assertFalse(r:set_verdict("nobody", true))
end

function TestRegistry:test_errors_in_event_callback_propagate_after_the_registry_is_consistent()
    local r = lmdisc.registry_new({}, function() error("boom") end)
    lu.assertErrorMsgContains("boom", function() r:seen(inst{}, 1) end)
    lu.assertEquals(r:count(), 1)
end

-- A second host answering for the same name (the "chimera" attack: a forged
-- SRV to evilhost:9999 on one interface) never mixes with the real host's
-- addresses: the peer is one coherent instance, flagged as in conflict.
function TestRegistry:test_instances_that_disagree_on_host_never_mix()
    local r = new()
    r:seen(inst{proto = 4, address = "10.0.0.2", host = "h2.local"}, 1)
    r:seen(inst{proto = 6, address = "fd00::2", host = "h2.local"}, 1)
    local p = r:get("a:8000")
    lu.assertFalse(p.conflict)
    lu.assertEquals(p.addresses, {"10.0.0.2", "fd00::2"})
    -- the forger, newer, on another interface
    r:seen(inst{proto = 4, ifindex = 3, ifname = "eth1", address = "10.0.0.66", host = "evilhost.local",
                port = 9999, txt = {info = "EVIL"}}, 2)
    p = r:get("a:8000")
    lu.assertTrue(p.conflict)
    lu.assertEquals(p.host, "evilhost.local")
    lu.assertEquals(p.port, 9999)
    lu.assertEquals(p.addresses, {"10.0.0.66"}) -- never h2's addresses with evil's port
    -- the competing instance is listed, whole, beside the one shown
    lu.assertEquals(p.competing, {{host = "h2.local", port = 8000, addresses = {"10.0.0.2", "fd00::2"}}})
    local doc = cjson.decode(r:get_json("a:8000"))
    lu.assertTrue(doc.conflict)
    lu.assertEquals(doc.host, "evilhost.local")
    lu.assertEquals(doc.competing, {{host = "h2.local", port = 8000, addresses = {"10.0.0.2", "fd00::2"}}})
    -- the forged record goes: the real one speaks again, whole
    r:gone(inst{proto = 4, ifindex = 3, ifname = "eth1", host = "evilhost.local"}, "goodbye", 3)
    r:seen(inst{proto = 4, address = "10.0.0.2", host = "h2.local"}, 4)
    p = r:get("a:8000")
    lu.assertFalse(p.conflict)
    lu.assertNil(p.competing)
    lu.assertEquals(p.host, "h2.local")
    lu.assertEquals(p.port, 8000)
    lu.assertEquals(p.addresses, {"10.0.0.2", "fd00::2"})
end

-- With trust, the instance that was verified keeps speaking for the peer:
-- a forged newer record from another host is flagged, not shown.
function TestRegistry:test_the_trusted_instance_keeps_speaking()
    local r = new()
    r:seen(inst{proto = 4, address = "10.0.0.2", host = "h2.local"}, 1)
    lu.assertEquals(r:set_trust("a:8000", 0, "0123456789abcdef"), -1)
    local p = r:get("a:8000")
    lu.assertTrue(p.trusted)
    lu.assertEquals(p.signer, "0123456789abcdef")
    r:seen(inst{proto = 4, ifindex = 3, ifname = "eth1", address = "10.0.0.66", host = "evilhost.local",
                port = 9999}, 2)
    p = r:get("a:8000")
    lu.assertTrue(p.conflict)
    lu.assertEquals(p.host, "h2.local")
    lu.assertEquals(p.port, 8000)
    lu.assertEquals(p.addresses, {"10.0.0.2"})
    lu.assertEquals(p.competing, {{host = "evilhost.local", port = 9999, addresses = {"10.0.0.66"}}})
    -- the trusted host gone: the other one speaks (and will not verify)
    r:gone(inst{proto = 4, address = "10.0.0.2", host = "h2.local"}, "goodbye", 3)
    p = r:get("a:8000")
    lu.assertEquals(p.host, "evilhost.local")
    lu.assertFalse(p.trusted, "the verified host is gone: the other record is not trusted")
    lu.assertNil(p.signer)
end

-- A peer's goodbye is held for the network to confirm: seen again within
-- the hold (a forged goodbye, the real host still answering), it never
-- leaves; not seen, it leaves as goodbye when the hold ends.  Trusted or
-- not: anyone can forge a goodbye for anyone.
function TestRegistry:test_a_trusted_peers_goodbye_is_confirmed_first()
    local r, ev, confirms = new({goodbye_hold = 2})
    r:seen(inst{address = "10.0.0.2", host = "h2.local"}, 1)
    r:set_trust("a:8000", 0, "0123456789abcdef")
    r:gone(inst{}, "goodbye", 10)
    lu.assertEquals(confirms, {"a:8000"}) -- asked once
    lu.assertEquals(#ev, 1) -- the join only
    lu.assertEquals(r:next_deadline(), 12)
    r:seen(inst{address = "10.0.0.2", host = "h2.local"}, 11)
    r:tick(13)
    lu.assertEquals(#ev, 1, "no leave, no rejoin")
    lu.assertNotNil(r:get("a:8000"))
    -- a real goodbye: nobody answers within the hold
    r:gone(inst{}, "goodbye", 20)
    r:tick(21.9)
    lu.assertEquals(#ev, 1)
    r:tick(22)
    lu.assertEquals(ev[2].kind, "leave")
    lu.assertEquals(ev[2].reason, "goodbye")
    lu.assertNil(r:get("a:8000"))
    -- an untrusted peer's goodbye is held the same way
    r:seen(inst{name = "b:8000"}, 30)
    r:gone(inst{name = "b:8000"}, "goodbye", 31)
    lu.assertEquals(ev[#ev].kind, "join")
    lu.assertEquals(confirms[#confirms], "b:8000")
    r:seen(inst{name = "b:8000"}, 32) -- it answered: no leave
    r:tick(34)
    lu.assertEquals(ev[#ev].kind, "join")
    r:gone(inst{name = "b:8000"}, "goodbye", 40)
    r:tick(42)
    lu.assertEquals(ev[#ev].kind, "leave")
    lu.assertEquals(ev[#ev].reason, "goodbye")
end

function TestRegistry:test_hostile_names_and_txt_are_stored_verbatim()
    local r = new()
    local name = "evil\n\27[31m\255name"
    r:seen(inst{name = name, txt = {x = "\0\255"}}, 1)
    local p = r:get(name)
    lu.assertEquals(p.name, name)
    lu.assertEquals(p.txt.x, "\0\255")
end

function TestRegistry:test_settle_gathers_ipv4_and_ipv6_into_one_join()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{proto = 4}, 10)
    r:seen(inst{proto = 6}, 10.01)
    lu.assertEquals(#ev, 0)
    lu.assertEquals(#r:snapshot(), 0) -- not reported yet, so not listed
    lu.assertAlmostEquals(r:next_deadline(), 10.05, 1e-9)
    r:tick(10.05)
    lu.assertEquals(#ev, 1)
    lu.assertEquals(ev[1].kind, "join")
    lu.assertEquals(ev[1].peer.addresses, {"10.0.0.1", "fd00::1"})
    lu.assertEquals(r:next_deadline(), 71) -- ttl deadlines are whole seconds
end

function TestRegistry:test_deadlines_within_a_second_share_one_wakeup()
    local r, ev, confirms = new{ttl = 60}
    r:seen(inst{name = "a"}, 100.1)
    r:seen(inst{name = "b"}, 100.7)
    lu.assertEquals(r:next_deadline(), 161)
    r:tick(161)
    lu.assertEquals(confirms, {"a", "b"})
end

function TestRegistry:test_settle_gathers_changes_and_keeps_the_first_old_state()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{}, 0)
    r:tick(0.05)
    r:seen(inst{txt = {info = "b"}}, 1)
    r:seen(inst{txt = {info = "c"}, port = 1234}, 1.01)
    lu.assertEquals(#ev, 1)
    r:tick(1.05)
    lu.assertEquals(#ev, 2)
    lu.assertEquals(ev[2].kind, "update")
    lu.assertEquals(ev[2].changes, "port,txt")
    lu.assertEquals(ev[2].old.info, "gemma")
    lu.assertEquals(ev[2].peer.info, "c")
end

function TestRegistry:test_changes_that_cancel_out_are_no_event()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{}, 0)
    r:tick(0.05)
    r:seen(inst{txt = {info = "b"}}, 1)
    r:seen(inst{}, 1.01)
    r:tick(1.05)
    lu.assertEquals(#ev, 1)
end

function TestRegistry:test_peer_gone_before_settling_is_never_reported()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{}, 0)
    r:gone(inst{}, "goodbye", 0.01)
    r:tick(1)
    lu.assertEquals(#ev, 0)
    lu.assertEquals(r:count(), 0)
end

function TestRegistry:test_leave_drops_pending_address_update()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{proto = 4}, 0)
    r:seen(inst{proto = 6}, 0)
    r:tick(0.05)
    r:gone(inst{proto = 6}, "goodbye", 5)
    r:gone(inst{proto = 4}, "goodbye", 5.001)
    r:tick(6)
    local kinds = {}
    for i, e in ipairs(ev) do kinds[i] = e.kind end
    lu.assertEquals(kinds, {"join", "leave"})
end

-- Goodbyes for a trusted peer on IPv4 and IPv6: each instance is asked for
-- on its own protocol (one lookup for the name answers on one of them only),
-- and both answering keeps it whole: no leave, no address change.
function TestRegistry:test_each_held_instance_is_asked_for_on_its_own()
    local r, ev, confirms, asked = new({goodbye_hold = 2})
    r:seen(inst{proto = 4, ifindex = 2, address = "10.0.0.2", host = "h2.local"}, 1)
    r:seen(inst{proto = 6, ifindex = 2, address = "fd00::2", host = "h2.local"}, 1)
    r:set_trust("a:8000", 0, "0123456789abcdef")
    local before = #ev
    r:gone(inst{proto = 4, ifindex = 2}, "goodbye", 10)
    r:gone(inst{proto = 6, ifindex = 2}, "goodbye", 10)
    r:gone(inst{proto = 6, ifindex = 2}, "goodbye", 10.5) -- the same burst again: not asked twice
    lu.assertEquals(#confirms, 2)
    lu.assertEquals(asked, {["a:8000/2/4"] = 1, ["a:8000/2/6"] = 1})
    r:seen(inst{proto = 6, ifindex = 2, address = "fd00::2", host = "h2.local"}, 11)
    r:seen(inst{proto = 4, ifindex = 2, address = "10.0.0.2", host = "h2.local"}, 11)
    r:tick(13)
    lu.assertEquals(#ev, before, "no leave, no update")
    lu.assertEquals(r:get("a:8000").addresses, {"10.0.0.2", "fd00::2"})
end

-- A server seen over mDNS and in a wide-area DNS domain (instances on
-- ifindex 0, ifname "dns", from src/wide/browse.c) is one peer with
-- both sources, its host names differing by nature (h1.local, h1.DOMAIN);
-- the nearest addresses (mDNS, on our link) come first.
local function dns(t)
    t.ifindex, t.ifname = 0, "dns"
    t.host = t.host or "a.sd.example.org"
    return inst(t)
end

function TestRegistry:test_sources_mdns_and_dns_make_one_peer_nearest_addresses_first()
    local r, ev = new()
    r:seen(inst{proto = 4, address = "10.0.0.1"}, 1)
    r:seen(inst{proto = 6, address = "fd00::1"}, 1)
    local p = r:get("a:8000")
    lu.assertEquals(p.sources, {"mdns"})
    lu.assertEquals(ev[1].peer.sources, {"mdns"})
    r:seen(dns{proto = 4, address = "192.0.2.1"}, 2)
    r:seen(dns{proto = 6, address = "2001:db8::1"}, 2)
    r:seen(dns{proto = 4, address = "192.0.2.1"}, 3) -- a later walk that changed nothing
    p = r:get("a:8000")
    lu.assertEquals(p.sources, {"mdns", "dns"})
    lu.assertFalse(p.conflict, "h1.local and h1.DOMAIN on one port are one server")
    lu.assertNil(p.competing)
    lu.assertEquals(p.addresses, {"10.0.0.1", "fd00::1", "192.0.2.1", "2001:db8::1"})
    lu.assertEquals(p.interfaces, {"eth0", "dns"})
    local doc = cjson.decode(r:get_json("a:8000"))
    lu.assertEquals(doc.sources, {"mdns", "dns"})
    lu.assertEquals(doc.addresses[1].address, "10.0.0.1")
    lu.assertEquals(doc.addresses[3], {address = "192.0.2.1", family = 4, interface = "dns"})
    local kinds = {}
    for i, e in ipairs(ev) do kinds[i] = e.kind .. ":" .. e.changes end
    lu.assertEquals(kinds, {"join:", "update:addresses", "update:addresses,sources", "update:addresses"})
    lu.assertEquals(ev[3].old.sources, {"mdns"})
    -- the DNS side gone: still the peer, over mDNS only
    r:gone(dns{proto = 4}, "goodbye")
    r:gone(dns{proto = 6}, "goodbye")
    p = r:get("a:8000")
    lu.assertEquals(p.sources, {"mdns"})
    lu.assertEquals(p.addresses, {"10.0.0.1", "fd00::1"})
    lu.assertEquals(ev[#ev].changes, "addresses,sources")
    -- and the other way round: the mDNS side gone, DNS stays
    r:seen(dns{proto = 4, address = "192.0.2.1"}, 4)
    r:gone(inst{proto = 4}, "goodbye")
    r:gone(inst{proto = 6}, "goodbye")
    lu.assertEquals(r:get("a:8000").sources, {"dns"})
    lu.assertEquals(cjson.decode(r:get_json("a:8000")).sources, {"dns"})
    lu.assertEquals(r:count(), 1)
end

function TestRegistry:test_an_address_seen_over_both_sources_is_listed_once_as_the_nearest()
    local r = new()
    r:seen(dns{proto = 4, address = "10.0.0.1"}, 1)
    r:seen(inst{proto = 4, address = "10.0.0.1"}, 2)
    r:seen(inst{proto = 6, address = "fd00::1"}, 2)
    local doc = cjson.decode(r:get_json("a:8000"))
    lu.assertEquals(doc.addresses, {{address = "10.0.0.1", family = 4, interface = "eth0"},
                                    {address = "fd00::1", family = 6, interface = "eth0"}})
    lu.assertEquals(doc.sources, {"mdns", "dns"})
end

function TestRegistry:test_another_host_in_dns_is_still_a_conflict()
    local r = new()
    r:seen(inst{proto = 4, address = "10.0.0.1"}, 1)
    r:seen(dns{proto = 4, address = "192.0.2.66", host = "evil.sd.example.org"}, 2)
    local p = r:get("a:8000")
    lu.assertTrue(p.conflict)
    lu.assertEquals(p.sources, {"mdns", "dns"})
    lu.assertEquals(#p.addresses, 1)
    r:seen(dns{proto = 4, address = "192.0.2.66", port = 9999}, 3) -- same label, another port
    lu.assertTrue(r:get("a:8000").conflict)
end

-- A peer verified through the zone (trust) is not joined by an mDNS
-- record of the same label and port: anyone on the link can announce one.
-- It stays a rival, lends no addresses, and the zone's record speaks.
function TestRegistry:test_a_link_record_cannot_join_a_peer_verified_in_dns()
    local r = new()
    r:seen(dns{proto = 4, address = "192.0.2.1"}, 1)
    r:set_trust("a:8000", 0, "0123456789abcdef")
    r:seen(inst{proto = 4, address = "10.0.0.66", host = "a.local"}, 2)
    local p = r:get("a:8000")
    lu.assertEquals(p.host, "a.sd.example.org")
    lu.assertTrue(p.trusted)
    lu.assertTrue(p.conflict)
    lu.assertEquals(p.addresses, {"192.0.2.1"})
    lu.assertEquals(p.competing, {{host = "a.local", port = 8000, addresses = {"10.0.0.66"}}})
    -- nor by an mDNS record that names the zone's host itself
    local r3 = new()
    r3:seen(dns{proto = 4, address = "192.0.2.1"}, 1)
    r3:set_trust("a:8000", 0, "0123456789abcdef")
    r3:seen(inst{proto = 4, address = "10.0.0.67", host = "a.sd.example.org"}, 2)
    p = r3:get("a:8000")
    lu.assertTrue(p.conflict)
    lu.assertEquals(p.addresses, {"192.0.2.1"})
    lu.assertEquals(p.competing, {{host = "a.sd.example.org", port = 8000, addresses = {"10.0.0.67"}}})
    -- the other way round, a DNS record may join a peer verified on the link
    local r2 = new()
    r2:seen(inst{proto = 4, address = "10.0.0.1", host = "a.local"}, 1)
    r2:set_trust("a:8000", 0, "0123456789abcdef")
    r2:seen(dns{proto = 4, address = "192.0.2.1"}, 2)
    p = r2:get("a:8000")
    lu.assertEquals(p.host, "a.local")
    lu.assertTrue(p.trusted)
    lu.assertFalse(p.conflict)
    lu.assertEquals(p.addresses, {"10.0.0.1", "192.0.2.1"})
end

-- No fixed wait: mDNS marks an instance complete when no other instance of
-- its name that avahi reported is still resolving.  A new peer joins the
-- moment its last pending instance resolves, with every address; settle is
-- only the bound on waiting for one that never answers.
function TestRegistry:test_a_join_is_reported_when_no_instance_is_pending()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{proto = 4}, 10)                   -- IPv6 one still resolving
    lu.assertEquals(#ev, 0)
    r:seen(inst{proto = 6, complete = true}, 10.002)
    lu.assertEquals(#ev, 1, "joined at once, no window")
    lu.assertEquals(ev[1].kind, "join")
    lu.assertEquals(ev[1].peer.addresses, {"10.0.0.1", "fd00::1"})
    lu.assertEquals(#r:snapshot(), 1)
    lu.assertEquals(r:next_deadline(), 71)      -- no settle deadline left
    r:tick(10.05)
    lu.assertEquals(#ev, 1, "one join, not join + update")
end

function TestRegistry:test_a_lone_complete_instance_joins_at_once_and_a_later_address_is_an_update()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{proto = 4, complete = true}, 10)
    lu.assertEquals(#ev, 1)
    lu.assertEquals(ev[1].peer.addresses, {"10.0.0.1"})
    r:seen(inst{proto = 6, complete = true}, 10.2)
    r:tick(10.25)
    lu.assertEquals(#ev, 2)
    lu.assertEquals(ev[2].kind, "update")
    lu.assertEquals(ev[2].changes, "addresses")
end

function TestRegistry:test_an_instance_that_never_resolves_delays_a_join_by_the_window_at_most()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{proto = 4}, 10)                   -- its sibling never answers
    lu.assertAlmostEquals(r:next_deadline(), 10.05, 1e-9)
    r:tick(10.05)
    lu.assertEquals(#ev, 1)
    lu.assertEquals(ev[1].kind, "join")
end

-- A peer that comes back (a re-registered service, a restarted agent's)
-- joins once, with the instances it had: its IPv4 instance can resolve,
-- complete, a millisecond before avahi reports its IPv6 one (in the lab, 2
-- joins in 16 of a re-registered service came with one address and the
-- other 52 ms later as an update).  It waits for them as for pending ones:
-- until they resolve, the settle window at most.
function TestRegistry:test_a_peer_seen_again_joins_once_with_the_instances_it_had()
    local r, ev = new{ttl = 60, settle = 0.05}
    r:seen(inst{proto = 4}, 10)
    r:seen(inst{proto = 6, complete = true}, 10.001)
    lu.assertEquals(#ev, 1)
    r:gone(inst{proto = 6}, "goodbye")
    r:gone(inst{proto = 4}, "goodbye")
    lu.assertEquals(ev[#ev].kind, "leave")
    local n = #ev
    r:seen(inst{proto = 4, complete = true}, 20) -- nothing else reported yet
    lu.assertEquals(#ev, n, "joined before the IPv6 instance it had came back")
    lu.assertAlmostEquals(r:next_deadline(), 20.05, 1e-9)
    r:seen(inst{proto = 6, complete = true}, 20.001)
    lu.assertEquals(#ev, n + 1)
    lu.assertEquals(ev[n + 1].kind, "join")
    lu.assertEquals(ev[n + 1].peer.addresses, {"10.0.0.1", "fd00::1"})
    r:tick(20.1)
    lu.assertEquals(#ev, n + 1, "one join, not join + update")
    -- back without its IPv6 instance: it joins when the window ends, with what it has
    r:gone(inst{proto = 6}, "goodbye")
    r:gone(inst{proto = 4}, "goodbye")
    n = #ev
    r:seen(inst{proto = 4, complete = true}, 30)
    lu.assertEquals(#ev, n)
    r:tick(30.05)
    lu.assertEquals(#ev, n + 1)
    lu.assertEquals(ev[n + 1].kind, "join")
    lu.assertEquals(ev[n + 1].peer.addresses, {"10.0.0.1"})
    -- and another peer, never seen before, still joins at once
    r:seen(inst{name = "b:8000", proto = 4, complete = true}, 31)
    lu.assertEquals(ev[#ev].kind, "join")
    lu.assertEquals(ev[#ev].name, "b:8000")
end

os.exit(lu.LuaUnit.run())

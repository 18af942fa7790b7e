/* GET /metrics: Prometheus text format. */
#include "api/internal.h"
#include "base/util.h"
#include "trust/trust.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <string.h>

/* A label value: backslash, quote and newline escaped (the format's rules);
 * names are UTF-8 already (JSON strings). */
static void label(struct evbuffer *b, const char *key, const char *v)
{
    evbuffer_add_printf(b, "%s=\"", key);
    for (const char *p = v ? v : ""; *p; p++) {
        if (*p == '\\' || *p == '"')
            evbuffer_add_printf(b, "\\%c", *p);
        else if (*p == '\n')
            evbuffer_add(b, "\\n", 2);
        else
            evbuffer_add(b, p, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void service_line(struct evbuffer *b, json_t *svc, const char *source)
{
    evbuffer_add_printf(b, "lmdisc_service_announced{");
    label(b, "name", json_string_value(json_object_get(svc, "name")));
    evbuffer_add(b, ",", 1);
    char port[8];
    snprintf(port, sizeof port, "%d", (int)json_integer_value(json_object_get(svc, "port")));
    label(b, "port", port);
    evbuffer_add(b, ",", 1);
    label(b, "state", json_string_value(json_object_get(svc, "state")));
    evbuffer_add(b, ",", 1);
    label(b, "source", source);
    const char *state = json_string_value(json_object_get(svc, "state"));
    evbuffer_add_printf(b, "} %d\n", state && !strcmp(state, "established"));
}

/* One series per service this agent announces, the configured one and every
 * registered one: 1 while it is established on the network. */
static void services(lmd_api *api, struct evbuffer *b)
{
    json_t *self = api->src.self ? api->src.self(api->src.ud) : NULL;
    if (!self)
        return;
    evbuffer_add_printf(b, "# HELP lmdisc_service_announced A service this agent announces (configured or "
                           "registered): 1 while established on the network, 0 while registering, renamed or "
                           "draining.\n# TYPE lmdisc_service_announced gauge\n");
    if (json_is_true(json_object_get(self, "announcing")) && json_object_get(self, "port"))
        service_line(b, self, "config");
    size_t i;
    json_t *svc;
    json_array_foreach(json_object_get(self, "services"), i, svc)
        service_line(b, svc, "registered");
    json_decref(self);
}


static void metric(struct evbuffer *b, const char *name, const char *type, const char *help, double v)
{
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

void lmd_api_handle_metrics(lmd_api *api, struct evhttp_request *req)
{
    struct lmd_metrics m = {0};
    if (api->src.metrics)
        api->src.metrics(api->src.ud, &m);
    struct evbuffer *b = evbuffer_new();
    if (!b) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    metric(b, "lmdisc_peers_alive", "gauge", "Peers the policy keeps.", m.peers_alive);
    metric(b, "lmdisc_services_seen", "gauge", "Services of our type on the network, before the filter.",
           m.services_seen);
    metric(b, "lmdisc_joins_total", "counter", "Peers that joined.", m.joins);
    metric(b, "lmdisc_updates_total", "counter", "Peer updates.", m.updates);
    evbuffer_add_printf(b, "# HELP lmdisc_leaves_total Peers that left, by reason.\n"
                           "# TYPE lmdisc_leaves_total counter\n");
    const struct { const char *r; double v; } leaves[] = {
        {"goodbye", m.leaves_goodbye}, {"expired", m.leaves_expired}, {"filtered", m.leaves_filtered},
        {"unhealthy", m.leaves_unhealthy}, {"other", m.leaves_other}};
    for (size_t i = 0; i < LMD_ARRAY_LEN(leaves); i++)
        evbuffer_add_printf(b, "lmdisc_leaves_total{reason=\"%s\"} %.17g\n", leaves[i].r, leaves[i].v);
    metric(b, "lmdisc_hook_runs_total", "counter", "Policy hook calls.", m.hook_runs);
    metric(b, "lmdisc_hook_errors_total", "counter", "Policy hook calls that failed.", m.hook_errors);
    metric(b, "lmdisc_hook_seconds_total", "counter", "Time spent in policy hooks.", m.hook_seconds);
    metric(b, "lmdisc_avahi_reconnects_total", "counter", "Connections to avahi-daemon rebuilt.",
           m.avahi_reconnects);
    metric(b, "lmdisc_avahi_up", "gauge", "1 while connected to a running avahi-daemon.", m.avahi_running);
    metric(b, "lmdisc_instances_unresolved", "gauge",
           "Service instances on the network not followed: avahi-daemon refuses more resolvers (a flood?).",
           m.instances_unresolved);
    metric(b, "lmdisc_resolvers_open", "gauge", "Service resolvers open (one per instance followed).",
           m.resolvers_open);
    metric(b, "lmdisc_wire_listener_open", "gauge",
           "1 while the agent reads mDNS answers itself because avahi-daemon is behind.", m.wire_open);
    metric(b, "lmdisc_wire_listener_opens_total", "counter", "Times the mDNS listener opened.", m.wire_opens);
    metric(b, "lmdisc_wire_instances_held", "gauge",
           "Instances taken from the wire that avahi-daemon has not confirmed yet.", m.wire_held);
    metric(b, "lmdisc_wire_instances_total", "counter", "Instances handed to the registry from the wire.",
           m.wire_instances);
    metric(b, "lmdisc_wire_joins_total", "counter", "Peers that joined from the wire (before avahi resolved them).",
           m.wire_joins);
    metric(b, "lmdisc_wire_gone_total", "counter",
           "Instances taken from the wire that left by their goodbye or TTL before avahi confirmed them.", m.wire_gone);
    metric(b, "lmdisc_wire_dropped_total", "counter",
           "mDNS records not read: past the listener's table cap, or datagrams the kernel dropped.", m.wire_dropped);
    metric(b, "lmdisc_wire_refused_total", "counter",
           "mDNS datagrams the listener refused: a hop limit other than 255 (not from the link).", m.wire_refused);
    metric(b, "lmdisc_lua_memory_bytes", "gauge", "Memory held by the policy's Lua VM.", m.lua_memory_bytes);
    metric(b, "lmdisc_policy_restarts_total", "counter", "Restarts of the policy worker (it died or was killed).",
           m.policy_restarts);
    metric(b, "lmdisc_policy_events_dropped_total", "counter",
           "Events that got the fallback verdict because too many waited for the policy worker.", m.policy_dropped);
    metric(b, "lmdisc_policy_state", "gauge",
           "The policy worker: 0 running, 1 restarting, 2 suspended (peers get fallback verdicts).", m.policy_state);
    metric(b, "lmdisc_api_requests_total", "counter", "API requests served.", api->requests);
    metric(b, "lmdisc_services_registered", "gauge", "Services registered through the API and announced.",
           m.services_registered);
    metric(b, "lmdisc_api_connections", "gauge", "API connections open.", api->conns ? lmd_conns_count(api->conns) : 0);
    metric(b, "lmdisc_api_connections_refused_total", "counter",
           "API connections closed at accept: their client (a uid, a TCP address) held its share already.",
           api->conns ? lmd_conns_refused(api->conns) : 0);
    metric(b, "lmdisc_api_streams_dropped_total", "counter",
           "Event streams closed because their client fell too far behind.", api->streams_dropped);
    metric(b, "lmdisc_checks_total", "counter", "Peer checks started.", m.checks_total);
    metric(b, "lmdisc_checks_failed_total", "counter", "Peer checks that failed.", m.checks_failed_total);
    metric(b, "lmdisc_checks_in_flight_peak", "gauge", "Most peer checks that were in flight at once.",
           m.checks_in_flight_peak);
    if (m.trust) {
        evbuffer_add_printf(b, "# HELP lmdisc_untrusted_total Peers found untrusted, by reason.\n"
                               "# TYPE lmdisc_untrusted_total counter\n");
        for (int st = 1; st < (int)LMD_ARRAY_LEN(m.untrusted) && st <= LMD_TRUST_ERROR; st++)
            evbuffer_add_printf(b, "lmdisc_untrusted_total{reason=\"%s\"} %.17g\n",
                                lmd_trust_status_name((enum lmd_trust_status)st), m.untrusted[st]);
    }
    services(api, b);
    if (m.wide_area) {
        static const char *const RESULT[LMD_WIDE_RESULTS] = {"ok", "unreachable", "refused", "badtime", "badsig",
                                                             "badkey", "error"};
        evbuffer_add_printf(b, "# HELP lmdisc_dns_updates_total Wide-area DNS updates sent, by result.\n"
                               "# TYPE lmdisc_dns_updates_total counter\n");
        for (int r = 0; r < LMD_WIDE_RESULTS; r++)
            evbuffer_add_printf(b, "lmdisc_dns_updates_total{result=\"%s\"} %.17g\n", RESULT[r], m.dns_updates[r]);
        metric(b, "lmdisc_dns_published", "gauge", "1 while the wide-area zone holds this agent's records.",
               m.dns_published);
        metric(b, "lmdisc_dns_services_published", "gauge",
               "Services of this agent (configured and registered) the wide-area zone holds.",
               m.dns_services_published);
        metric(b, "lmdisc_dns_services_failing", "gauge",
               "Services of this agent whose last wide-area update failed (a missing grant, an unreachable server).",
               m.dns_services_failing);
        metric(b, "lmdisc_dns_update_seconds", "gauge", "Round trip of the last applied wide-area update.",
               m.dns_update_seconds);
        metric(b, "lmdisc_dns_update_bytes", "gauge", "Size of the last applied wide-area update message.",
               m.dns_update_bytes);
        evbuffer_add_printf(b, "# HELP lmdisc_dns_polls_total Checks of the wide-area domain, by outcome.\n"
                               "# TYPE lmdisc_dns_polls_total counter\n"
                               "lmdisc_dns_polls_total{result=\"unchanged\"} %.17g\n"
                               "lmdisc_dns_polls_total{result=\"read\"} %.17g\n"
                               "lmdisc_dns_polls_total{result=\"failed\"} %.17g\n",
                            m.dns_polls[0], m.dns_polls[1], m.dns_polls[2]);
        metric(b, "lmdisc_dns_services", "gauge", "Services of our type the last read of the domain found (not expired).",
               m.dns_services);
        metric(b, "lmdisc_dns_expired_total", "counter",
               "Wide-area services that left because their records were not refreshed within their lease.",
               m.dns_expired);
        evbuffer_add_printf(b, "# HELP lmdisc_dns_sweeps_total Compare-and-delete updates of expired services' "
                               "records, by result (kept: refreshed or removed meanwhile).\n"
                               "# TYPE lmdisc_dns_sweeps_total counter\n"
                               "lmdisc_dns_sweeps_total{result=\"swept\"} %.17g\n"
                               "lmdisc_dns_sweeps_total{result=\"kept\"} %.17g\n"
                               "lmdisc_dns_sweeps_total{result=\"failed\"} %.17g\n",
                            m.dns_sweeps[0], m.dns_sweeps[1], m.dns_sweeps[2]);
        evbuffer_add_printf(b, "# HELP lmdisc_dns_view_reads_total Reads of the wide-area domain taken into this "
                               "agent's view, by how: only the services a zone transfer's changes touched, or every "
                               "service compared (a whole transfer, a walk with queries, the shards listed changed).\n"
                               "# TYPE lmdisc_dns_view_reads_total counter\n"
                               "lmdisc_dns_view_reads_total{read=\"changes\"} %.17g\n"
                               "lmdisc_dns_view_reads_total{read=\"whole\"} %.17g\n",
                            m.dns_view_reads[0], m.dns_view_reads[1]);
        metric(b, "lmdisc_dns_queries_total", "counter",
               "DNS messages sent to read the wide-area domain (SOA polls, transfers, queries).", m.dns_queries);
        evbuffer_add_printf(b, "# HELP lmdisc_dns_read_bytes_total Bytes of those messages, by direction.\n"
                               "# TYPE lmdisc_dns_read_bytes_total counter\n"
                               "lmdisc_dns_read_bytes_total{direction=\"sent\"} %.17g\n"
                               "lmdisc_dns_read_bytes_total{direction=\"received\"} %.17g\n",
                            m.dns_bytes_out, m.dns_bytes_in);
    }
    if (m.wide_area) {
        metric(b, "lmdisc_dns_unsigned_total", "counter",
               "Answers about the wide-area domain dropped because the key did not sign them (forged, or a server "
               "that does not know the key); never believed.", m.dns_unsigned);
        metric(b, "lmdisc_dns_skipped_total", "counter",
               "Wide-area instances a read skipped: an SRV at \".\" or outside the domain, a host the server "
               "would not answer for, a TXT past 1,300 bytes.", m.dns_skipped);
        metric(b, "lmdisc_dns_stale_total", "counter",
               "Signed answers about the wide-area domain from a wide_area.read server at a serial older than "
               "one already read (a secondary cut off from its primary); never believed, reads move on.",
               m.dns_stale);
    }
    if (m.wide_area && m.dns_notify_on) {
        static const char *const NOTIFY[5] = {"accepted", "unsigned", "badsig", "invalid", "ratelimited"};
        evbuffer_add_printf(b, "# HELP lmdisc_dns_notify_total NOTIFY messages received on wide_area.notify, by "
                               "result (only accepted ones, signed by wide_area.key, are answered and acted on).\n"
                               "# TYPE lmdisc_dns_notify_total counter\n");
        for (int r = 0; r < 5; r++)
            evbuffer_add_printf(b, "lmdisc_dns_notify_total{result=\"%s\"} %.17g\n", NOTIFY[r], m.dns_notify[r]);
    }
    if (m.wide_area && m.dns_tell_on) {
        static const char *const TELL[LMD_WT_RESULTS] = {"taken", "refused", "unanswered", "failed", "coalesced"};
        evbuffer_add_printf(b, "# HELP lmdisc_dns_notify_sent_total NOTIFY messages this agent sent to the secondaries "
                               "of wide_area.also_notify after its own changes, by result (coalesced: a change told "
                               "by a NOTIFY already under way).\n"
                               "# TYPE lmdisc_dns_notify_sent_total counter\n");
        for (int r = 0; r < LMD_WT_RESULTS; r++)
            evbuffer_add_printf(b, "lmdisc_dns_notify_sent_total{result=\"%s\"} %.17g\n", TELL[r], m.dns_tell[r]);
    }
    if (m.wide_area && m.dns_read_server) {
        /* the label is an address from the configuration or the server
         * found: no quote or backslash to escape */
        evbuffer_add_printf(b, "# HELP lmdisc_dns_read_server The server the wide-area domain is read from now "
                               "(the first of wide_area.read that answers, else the primary).\n"
                               "# TYPE lmdisc_dns_read_server gauge\n"
                               "lmdisc_dns_read_server{server=\"%s\"} 1\n", m.dns_read_server);
    }
    if (m.wide_area && m.dns_sweeper) {
        evbuffer_add_printf(b, "# HELP lmdisc_dns_live_polls_total A sweeper's checks of the liveness zone, by outcome.\n"
                               "# TYPE lmdisc_dns_live_polls_total counter\n"
                               "lmdisc_dns_live_polls_total{result=\"unchanged\"} %.17g\n"
                               "lmdisc_dns_live_polls_total{result=\"read\"} %.17g\n"
                               "lmdisc_dns_live_polls_total{result=\"failed\"} %.17g\n",
                            m.dns_live_polls[0], m.dns_live_polls[1], m.dns_live_polls[2]);
        metric(b, "lmdisc_dns_live_records", "gauge", "Liveness records the sweeper follows.", m.dns_live_records);
        metric(b, "lmdisc_dns_live_expired_total", "counter",
               "Liveness records that stopped changing for their lease (their services removed).", m.dns_live_expired);
    }
    metric(b, "lmdisc_mdns_enabled", "gauge", "1 unless mdns { enabled = false }.", m.mdns_enabled);
    metric(b, "lmdisc_self_healthy", "gauge", "1 while the local server passes its health check, 0 while it "
           "fails, -1 without a health check.", m.self_healthy);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* libldns, loaded when DNS is first used (src/dns only; see ldns.c).
 *
 * An agent without wide_area never touches DNS, so libldns and what it
 * pulls in (libssl, libcrypto: 0.48 MB of private pages, 2 MB resident)
 * are not mapped into it.  A one-shot scan (lmd_discover_nodes) loads it
 * for its own mDNS query (mdns_*.c), and without it scans through avahi
 * alone (lmd_ldns_available).  Every ldns function and
 * table src/dns uses is reached through lmd_ldns(), which loads the library
 * on first use, as the client loads libcurl.  Include this header, never
 * <ldns/ldns.h> alone: a name missing from the list below fails the link
 * (libldns is not linked). */
#ifndef LMD_DNS_LDNS_H
#define LMD_DNS_LDNS_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>

#define LMD_LDNS_SYMBOLS(X) \
    X(ldns_dname_cat) \
    X(ldns_dname_compare) \
    X(ldns_dname_is_subdomain) \
    X(ldns_dname_label_count) \
    X(ldns_dname_new_frm_data) \
    X(ldns_dname_new_frm_str) \
    X(ldns_edns_deep_free) \
    X(ldns_edns_new_from_data) \
    X(ldns_edns_option_list_deep_free) \
    X(ldns_edns_option_list_new) \
    X(ldns_edns_option_list_push) \
    X(ldns_get_errorstr_by_id) \
    X(ldns_lookup_by_id) \
    X(ldns_native2rdf_int16) \
    X(ldns_native2rdf_int32) \
    X(ldns_pkt2str) \
    X(ldns_pkt2wire) \
    X(ldns_pkt_additional) \
    X(ldns_pkt_answer) \
    X(ldns_pkt_authority) \
    X(ldns_pkt_free) \
    X(ldns_rr_clone) \
    X(ldns_pkt_set_opcode) \
    X(ldns_pkt_set_aa) \
    X(ldns_pkt_set_qr) \
    X(ldns_pkt_set_id) \
    X(ldns_pkt_new) \
    X(ldns_pkt_get_opcode) \
    X(ldns_pkt_get_rcode) \
    X(ldns_pkt_id) \
    X(ldns_pkt_push_rr) \
    X(ldns_pkt_qr) \
    X(ldns_pkt_query_new) \
    X(ldns_pkt_question) \
    X(ldns_pkt_set_edns_option_list) \
    X(ldns_pkt_set_edns_udp_size) \
    X(ldns_pkt_set_random_id) \
    X(ldns_pkt_set_rd) \
    X(ldns_pkt_tc) \
    X(ldns_pkt_tsig) \
    X(ldns_pkt_tsig_sign) \
    X(ldns_pkt_tsig_verify) \
    X(ldns_pkt_tsig_verify_next) \
    X(ldns_rdf2native_int16) \
    X(ldns_rdf2native_int32) \
    X(ldns_rdf2str) \
    X(ldns_rdf_clone) \
    X(ldns_rdf_data) \
    X(ldns_rdf_deep_free) \
    X(ldns_rdf_get_type) \
    X(ldns_rdf_new_frm_data) \
    X(ldns_rdf_size) \
    X(ldns_resolver_deep_free) \
    X(ldns_resolver_nameserver_count) \
    X(ldns_resolver_nameservers) \
    X(ldns_resolver_new_frm_file) \
    X(ldns_rr_free) \
    X(ldns_rr_get_class) \
    X(ldns_rr_get_type) \
    X(ldns_rr_list_deep_free) \
    X(ldns_rr_list_new) \
    X(ldns_rr_list_push_rr) \
    X(ldns_rr_list_rr) \
    X(ldns_rr_list_rr_count) \
    X(ldns_rr_new) \
    X(ldns_rr_new_frm_type) \
    X(ldns_rr_owner) \
    X(ldns_rr_push_rdf) \
    X(ldns_rr_rd_count) \
    X(ldns_rr_rdf) \
    X(ldns_rr_set_class) \
    X(ldns_rr_set_owner) \
    X(ldns_rr_set_rdf) \
    X(ldns_rr_set_ttl) \
    X(ldns_rr_set_type) \
    X(ldns_rr_ttl) \
    X(ldns_str2rdf_b64) \
    X(ldns_update_pkt_new) \
    X(ldns_wire2pkt) \
    X(ldns_rcodes) \
    /* end */

struct lmd_ldns_api {
#define LMD_LDNS_MEMBER(f) __typeof__(f) *f;
    LMD_LDNS_SYMBOLS(LMD_LDNS_MEMBER)
#undef LMD_LDNS_MEMBER
};

/* The loaded library; the first call loads it, and if it cannot be
 * loaded says so (install Debian's libldns3) and exits: DNS was asked
 * for, and nothing of it can work. */
const struct lmd_ldns_api *lmd_ldns(void);
/* Whether libldns can be loaded (loads it); with the reason if not, for a
 * clear error before DNS is used (the agent's start with wide_area). */
bool lmd_ldns_available(char *why, size_t len);

#ifndef LMD_LDNS_NO_REDIRECT /* ldns.c: the names themselves */
#define ldns_dname_cat (*lmd_ldns()->ldns_dname_cat)
#define ldns_dname_compare (*lmd_ldns()->ldns_dname_compare)
#define ldns_dname_is_subdomain (*lmd_ldns()->ldns_dname_is_subdomain)
#define ldns_dname_label_count (*lmd_ldns()->ldns_dname_label_count)
#define ldns_dname_new_frm_data (*lmd_ldns()->ldns_dname_new_frm_data)
#define ldns_dname_new_frm_str (*lmd_ldns()->ldns_dname_new_frm_str)
#define ldns_edns_deep_free (*lmd_ldns()->ldns_edns_deep_free)
#define ldns_edns_new_from_data (*lmd_ldns()->ldns_edns_new_from_data)
#define ldns_edns_option_list_deep_free (*lmd_ldns()->ldns_edns_option_list_deep_free)
#define ldns_edns_option_list_new (*lmd_ldns()->ldns_edns_option_list_new)
#define ldns_edns_option_list_push (*lmd_ldns()->ldns_edns_option_list_push)
#define ldns_get_errorstr_by_id (*lmd_ldns()->ldns_get_errorstr_by_id)
#define ldns_lookup_by_id (*lmd_ldns()->ldns_lookup_by_id)
#define ldns_native2rdf_int16 (*lmd_ldns()->ldns_native2rdf_int16)
#define ldns_native2rdf_int32 (*lmd_ldns()->ldns_native2rdf_int32)
#define ldns_pkt2str (*lmd_ldns()->ldns_pkt2str)
#define ldns_pkt2wire (*lmd_ldns()->ldns_pkt2wire)
#define ldns_pkt_additional (*lmd_ldns()->ldns_pkt_additional)
#define ldns_pkt_answer (*lmd_ldns()->ldns_pkt_answer)
#define ldns_pkt_authority (*lmd_ldns()->ldns_pkt_authority)
#define ldns_pkt_free (*lmd_ldns()->ldns_pkt_free)
#define ldns_rr_clone (*lmd_ldns()->ldns_rr_clone)
#define ldns_pkt_set_opcode (*lmd_ldns()->ldns_pkt_set_opcode)
#define ldns_pkt_set_aa (*lmd_ldns()->ldns_pkt_set_aa)
#define ldns_pkt_set_qr (*lmd_ldns()->ldns_pkt_set_qr)
#define ldns_pkt_set_id (*lmd_ldns()->ldns_pkt_set_id)
#define ldns_pkt_new (*lmd_ldns()->ldns_pkt_new)
#define ldns_pkt_get_opcode (*lmd_ldns()->ldns_pkt_get_opcode)
#define ldns_pkt_get_rcode (*lmd_ldns()->ldns_pkt_get_rcode)
#define ldns_pkt_id (*lmd_ldns()->ldns_pkt_id)
#define ldns_pkt_push_rr (*lmd_ldns()->ldns_pkt_push_rr)
#define ldns_pkt_qr (*lmd_ldns()->ldns_pkt_qr)
#define ldns_pkt_query_new (*lmd_ldns()->ldns_pkt_query_new)
#define ldns_pkt_question (*lmd_ldns()->ldns_pkt_question)
#define ldns_pkt_set_edns_option_list (*lmd_ldns()->ldns_pkt_set_edns_option_list)
#define ldns_pkt_set_edns_udp_size (*lmd_ldns()->ldns_pkt_set_edns_udp_size)
#define ldns_pkt_set_random_id (*lmd_ldns()->ldns_pkt_set_random_id)
#define ldns_pkt_set_rd (*lmd_ldns()->ldns_pkt_set_rd)
#define ldns_pkt_tc (*lmd_ldns()->ldns_pkt_tc)
#define ldns_pkt_tsig (*lmd_ldns()->ldns_pkt_tsig)
#define ldns_pkt_tsig_sign (*lmd_ldns()->ldns_pkt_tsig_sign)
#define ldns_pkt_tsig_verify (*lmd_ldns()->ldns_pkt_tsig_verify)
#define ldns_pkt_tsig_verify_next (*lmd_ldns()->ldns_pkt_tsig_verify_next)
#define ldns_rdf2native_int16 (*lmd_ldns()->ldns_rdf2native_int16)
#define ldns_rdf2native_int32 (*lmd_ldns()->ldns_rdf2native_int32)
#define ldns_rdf2str (*lmd_ldns()->ldns_rdf2str)
#define ldns_rdf_clone (*lmd_ldns()->ldns_rdf_clone)
#define ldns_rdf_data (*lmd_ldns()->ldns_rdf_data)
#define ldns_rdf_deep_free (*lmd_ldns()->ldns_rdf_deep_free)
#define ldns_rdf_get_type (*lmd_ldns()->ldns_rdf_get_type)
#define ldns_rdf_new_frm_data (*lmd_ldns()->ldns_rdf_new_frm_data)
#define ldns_rdf_size (*lmd_ldns()->ldns_rdf_size)
#define ldns_resolver_deep_free (*lmd_ldns()->ldns_resolver_deep_free)
#define ldns_resolver_nameserver_count (*lmd_ldns()->ldns_resolver_nameserver_count)
#define ldns_resolver_nameservers (*lmd_ldns()->ldns_resolver_nameservers)
#define ldns_resolver_new_frm_file (*lmd_ldns()->ldns_resolver_new_frm_file)
#define ldns_rr_free (*lmd_ldns()->ldns_rr_free)
#define ldns_rr_get_class (*lmd_ldns()->ldns_rr_get_class)
#define ldns_rr_get_type (*lmd_ldns()->ldns_rr_get_type)
#define ldns_rr_list_deep_free (*lmd_ldns()->ldns_rr_list_deep_free)
#define ldns_rr_list_new (*lmd_ldns()->ldns_rr_list_new)
#define ldns_rr_list_push_rr (*lmd_ldns()->ldns_rr_list_push_rr)
#define ldns_rr_list_rr (*lmd_ldns()->ldns_rr_list_rr)
#define ldns_rr_list_rr_count (*lmd_ldns()->ldns_rr_list_rr_count)
#define ldns_rr_new (*lmd_ldns()->ldns_rr_new)
#define ldns_rr_new_frm_type (*lmd_ldns()->ldns_rr_new_frm_type)
#define ldns_rr_owner (*lmd_ldns()->ldns_rr_owner)
#define ldns_rr_push_rdf (*lmd_ldns()->ldns_rr_push_rdf)
#define ldns_rr_rd_count (*lmd_ldns()->ldns_rr_rd_count)
#define ldns_rr_rdf (*lmd_ldns()->ldns_rr_rdf)
#define ldns_rr_set_class (*lmd_ldns()->ldns_rr_set_class)
#define ldns_rr_set_owner (*lmd_ldns()->ldns_rr_set_owner)
#define ldns_rr_set_rdf (*lmd_ldns()->ldns_rr_set_rdf)
#define ldns_rr_set_ttl (*lmd_ldns()->ldns_rr_set_ttl)
#define ldns_rr_set_type (*lmd_ldns()->ldns_rr_set_type)
#define ldns_rr_ttl (*lmd_ldns()->ldns_rr_ttl)
#define ldns_str2rdf_b64 (*lmd_ldns()->ldns_str2rdf_b64)
#define ldns_update_pkt_new (*lmd_ldns()->ldns_update_pkt_new)
#define ldns_wire2pkt (*lmd_ldns()->ldns_wire2pkt)
#define ldns_rcodes (*lmd_ldns()->ldns_rcodes)
#endif

#endif

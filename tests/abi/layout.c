/* The public ABI as a program built against include/lmdisc.h sees it: the
 * size and alignment of every public struct, the offset and size of every
 * field, and the value of every constant.  tests/unit/test_abi.lua compares
 * this with the committed tests/abi/layout-ARCH.txt; a change to the ABI
 * updates that file on purpose (see include/lmdisc.h, "ABI rules"). */
#include <lmdisc.h>
#include <stdalign.h>
#include <stdio.h>

#define STRUCT(T) printf("struct %s size %zu align %zu\n", #T, sizeof(T), alignof(T))
#define FIELD(T, f) printf("field %s.%s offset %zu size %zu\n", #T, #f, offsetof(T, f), sizeof(((T *)0)->f))
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void)
{
    STRUCT(lmd_txt_item);
    FIELD(lmd_txt_item, key);
    FIELD(lmd_txt_item, value);
    FIELD(lmd_txt_item, value_len);
    FIELD(lmd_txt_item, has_value);

    STRUCT(lmd_txt);
    FIELD(lmd_txt, n);
    FIELD(lmd_txt, items);

    STRUCT(lmd_addr);
    FIELD(lmd_addr, addr);
    FIELD(lmd_addr, family);
    FIELD(lmd_addr, ifindex);
    FIELD(lmd_addr, ifname);
    FIELD(lmd_addr, reserved);

    STRUCT(lmd_rival);
    FIELD(lmd_rival, host);
    FIELD(lmd_rival, port);
    FIELD(lmd_rival, addr);
    FIELD(lmd_rival, reserved);

    STRUCT(lmd_node_info);
    FIELD(lmd_node_info, name);
    FIELD(lmd_node_info, type);
    FIELD(lmd_node_info, domain);
    FIELD(lmd_node_info, host);
    FIELD(lmd_node_info, port);
    FIELD(lmd_node_info, info);
    FIELD(lmd_node_info, info_len);
    FIELD(lmd_node_info, n_addrs);
    FIELD(lmd_node_info, addrs);
    FIELD(lmd_node_info, txt);
    FIELD(lmd_node_info, flags);
    FIELD(lmd_node_info, signer);
    FIELD(lmd_node_info, first_seen);
    FIELD(lmd_node_info, last_seen);
    FIELD(lmd_node_info, n_rivals);
    FIELD(lmd_node_info, rivals);
    FIELD(lmd_node_info, reserved);

    STRUCT(lmd_node_list);
    FIELD(lmd_node_list, n);
    FIELD(lmd_node_list, nodes);

    STRUCT(lmd_discover_opts);
    FIELD(lmd_discover_opts, size);
    FIELD(lmd_discover_opts, timeout);
    FIELD(lmd_discover_opts, type);
    FIELD(lmd_discover_opts, domain);
    FIELD(lmd_discover_opts, complete);

    STRUCT(lmd_announce_opts);
    FIELD(lmd_announce_opts, size);
    FIELD(lmd_announce_opts, name);
    FIELD(lmd_announce_opts, type);
    FIELD(lmd_announce_opts, txt);

    CONST(LMD_OK);
    CONST(LMD_EINVAL);
    CONST(LMD_ENOMEM);
    CONST(LMD_EAVAHI);
    CONST(LMD_ENODAEMON);
    CONST(LMD_ETIMEDOUT);
    CONST(LMD_ETXT);
    CONST(LMD_ECOLLISION);
    CONST(LMD_EIO);
    CONST(LMD_ELUA);
    CONST(LMD_ENOTFOUND);
    CONST(LMD_EEXIST);
    CONST(LMD_ELIMIT);
    CONST(LMD_EUNAVAIL);
    CONST(LMD_EPERM);
    CONST(LMD_NODE_LOCAL);
    CONST(LMD_NODE_OWN);
    CONST(LMD_NODE_CONFLICT);
    CONST(LMD_NODE_TRUSTED);
    CONST(LMD_NODE_MDNS);
    CONST(LMD_NODE_DNS);
    CONST(LMD_TXT_ITEM_MAX);
    printf("string LMD_DEFAULT_TYPE %s\n", LMD_DEFAULT_TYPE);
    return 0;
}

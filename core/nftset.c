/* Elements of an nftables set or map, added or deleted in one transaction
 * over nfnetlink with libmnl: what `nft add|delete element` does, without
 * libnftables. libnftables fills its cache first (every table of the
 * namespace, each with hash tables of 128 KiB), which costs some 20 ms of
 * CPU per call; this is one batch of three messages and one ack. Which
 * elements, and their bytes, are Lua's choice. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <string.h>
#include <time.h>

#include "core.h"

/* nft's data registers are 16 bytes; a concatenation of four fields fills 64 */
#define ELEMENT_MAX 64

static const char *const nftset_ops[] = {"add", "delete", NULL};
static const char *const nftset_families[] = {"ip", "ip6", "inet", NULL};
static const uint8_t nftset_family_codes[] = {NFPROTO_IPV4, NFPROTO_IPV6, NFPROTO_INET};

static void put_nfgenmsg(struct nlmsghdr *nlh, uint8_t family, uint16_t res_id) {
  struct nfgenmsg *nfg = mnl_nlmsg_put_extra_header(nlh, sizeof *nfg);
  nfg->nfgen_family = family;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(res_id);
}

static struct nlmsghdr *put_message(char *at, uint16_t type, uint16_t flags, unsigned seq) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(at);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  nlh->nlmsg_seq = seq;
  return nlh;
}

/* A nest `type` (an element's key or data) holding `len` bytes of `value`. */
static void put_value(struct nlmsghdr *nlh, uint16_t type, const char *value, size_t len) {
  struct nlattr *nest = mnl_attr_nest_start(nlh, type);
  mnl_attr_put(nlh, NFTA_DATA_VALUE, len, value);
  mnl_attr_nest_end(nlh, nest);
}

/* Send the batch of `len` bytes in `buf` and read the acks of its
 * `messages` messages: 0, or the first errno the kernel reported (for a
 * refused element; the whole batch is then undone). */
static int nftset_talk(const char *buf, size_t len, unsigned seq, lua_Integer messages) {
  struct mnl_socket *nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC);
  if (!nl)
    return errno;
  int err = 0;
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 || mnl_socket_sendto(nl, buf, len) < 0)
    err = errno;
  char reply[MNL_SOCKET_BUFFER_SIZE];
  while (!err && messages > 0) {
    ssize_t n = mnl_socket_recvfrom(nl, reply, sizeof reply);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      err = errno;
      break;
    }
    int left = (int)n;
    for (const struct nlmsghdr *nlh = (const void *)reply; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
      if (nlh->nlmsg_type != NLMSG_ERROR || nlh->nlmsg_seq != seq)
        continue;
      if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nlmsgerr))) {
        err = EBADMSG;
        break;
      }
      const struct nlmsgerr *ack = mnl_nlmsg_get_payload(nlh);
      if (ack->error) {
        err = -ack->error;
        break;
      }
      messages--;
    }
  }
  mnl_socket_close(nl);
  return err;
}

/* nft_elements(op, family, table, elements) -> true | fail, msg, errno:
 * add ("add", failing with EEXIST on a key already there) or delete
 * ("delete", ENOENT on one missing) elements of the sets and maps of table
 * `family` `table`, all or none. `elements` is a list of { set, key [,
 * data] }: the set's name, the bytes of the key and of a map's data as
 * nft's registers hold them (network order; each field of a concatenation
 * padded to 4 bytes). See nft(8), ELEMENTS; netlink(7). */
static int nftset_elements(lua_State *L) {
  int op = luaL_checkoption(L, 1, NULL, nftset_ops);
  int family = luaL_checkoption(L, 2, NULL, nftset_families);
  size_t table_len;
  const char *table = luaL_checklstring(L, 3, &table_len);
  luaL_argcheck(L, table_len > 0 && table_len < NFT_TABLE_MAXNAMELEN, 3, "not a table's name");
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_Integer count = luaL_len(L, 4);
  luaL_argcheck(L, count > 0 && count <= 1024, 4, "1 to 1024 elements expected");
  /* every element checked, and the batch's size known, before building it */
  size_t size = 2 * (MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg)));
  for (lua_Integer i = 1; i <= count; i++) {
    luaL_argcheck(L, lua_geti(L, 4, i) == LUA_TTABLE, 4, "each element must be a table { set, key [, data] }");
    size += MNL_NLMSG_HDRLEN + MNL_ALIGN(sizeof(struct nfgenmsg)) + 2 * MNL_ATTR_HDRLEN
            + MNL_ALIGN(table_len + 1) + 2 * MNL_ATTR_HDRLEN;
    for (int field = 1; field <= 3; field++) {
      int kind = lua_geti(L, -1, field);
      size_t len = 0;
      lua_tolstring(L, -1, &len);
      luaL_argcheck(L, kind == LUA_TSTRING || (field == 3 && kind == LUA_TNIL), 4,
                    "an element's set, key and data must be strings");
      if (field == 1)
        luaL_argcheck(L, len > 0 && len < NFT_SET_MAXNAMELEN, 4, "not a set's name");
      else
        luaL_argcheck(L, kind == LUA_TNIL || (len > 0 && len <= ELEMENT_MAX), 4,
                      "an element's key and data must have 1 to 64 bytes");
      size += field == 1 ? MNL_ALIGN(len + 1) : kind == LUA_TNIL ? 0 : 2 * MNL_ATTR_HDRLEN + MNL_ALIGN(len);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  char *buf = lua_newuserdatauv(L, size, 0);
  memset(buf, 0, size);
  unsigned seq = (unsigned)time(NULL);

  struct nlmsghdr *nlh = put_message(buf, NFNL_MSG_BATCH_BEGIN, 0, seq);
  put_nfgenmsg(nlh, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  char *at = buf + nlh->nlmsg_len;
  /* one message per element, each acked */
  uint16_t type = (uint16_t)(NFNL_SUBSYS_NFTABLES << 8 | (op == 0 ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM));
  uint16_t flags = NLM_F_ACK | (op == 0 ? NLM_F_CREATE | NLM_F_EXCL : 0);
  for (lua_Integer i = 1; i <= count; i++) {
    lua_geti(L, 4, i);
    nlh = put_message(at, type, flags, seq);
    put_nfgenmsg(nlh, nftset_family_codes[family], 0);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_TABLE, table);
    lua_geti(L, -1, 1);
    mnl_attr_put_strz(nlh, NFTA_SET_ELEM_LIST_SET, lua_tostring(L, -1));
    lua_pop(L, 1);
    struct nlattr *list = mnl_attr_nest_start(nlh, NFTA_SET_ELEM_LIST_ELEMENTS);
    struct nlattr *element = mnl_attr_nest_start(nlh, NFTA_LIST_ELEM);
    static const uint16_t fields[] = {NFTA_SET_ELEM_KEY, NFTA_SET_ELEM_DATA};
    for (int field = 2; field <= 3; field++) {
      size_t len;
      lua_geti(L, -1, field);
      const char *value = lua_tolstring(L, -1, &len);
      if (value)
        put_value(nlh, fields[field - 2], value, len);
      lua_pop(L, 1);
    }
    mnl_attr_nest_end(nlh, element);
    mnl_attr_nest_end(nlh, list);
    at += nlh->nlmsg_len;
    lua_pop(L, 1);
  }
  nlh = put_message(at, NFNL_MSG_BATCH_END, 0, seq);
  put_nfgenmsg(nlh, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);
  at += nlh->nlmsg_len;

  int err = nftset_talk(buf, (size_t)(at - buf), seq, count);
  if (err)
    return lbox_fail_errno(L, err, op == 0 ? "nft add element" : "nft delete element", table);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg nftset_funcs[] = {
  {"nft_elements", nftset_elements},
  {NULL, NULL}
};

void lbox_open_nftset(lua_State *L) {
  luaL_setfuncs(L, nftset_funcs, 0);
}

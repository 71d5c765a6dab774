/* Network links, addresses and routes of this process's network namespace,
 * over rtnetlink (rtnetlink(7)) with libmnl: what `ip link|addr|route add`
 * do. Each call opens a socket, sends one request, reads the kernel's ack. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

/* Send the request in `buf` and wait for its ack: 0, or the errno. */
static int net_talk(struct nlmsghdr *nlh) {
  struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!nl)
    return errno;
  int err = 0;
  unsigned seq = (unsigned)time(NULL);
  nlh->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 || mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    err = errno;
  } else {
    char reply[MNL_SOCKET_BUFFER_SIZE];
    ssize_t n;
    do {
      n = mnl_socket_recvfrom(nl, reply, sizeof reply);
    } while (n < 0 && errno == EINTR);
    if (n < 0 || mnl_cb_run(reply, (size_t)n, seq, mnl_socket_get_portid(nl), NULL, NULL) < 0)
      err = errno;
  }
  mnl_socket_close(nl);
  return err;
}

static const char *check_ifname(lua_State *L, int arg) {
  size_t len;
  const char *name = luaL_checklstring(L, arg, &len);
  luaL_argcheck(L, len > 0 && len < IFNAMSIZ && !strchr(name, '/'), arg, "not an interface name");
  return name;
}

/* Start a request of `type` with `flags` in `buf` (the message header is at
 * its start) and return its family header of `size` bytes, zeroed. */
static void *put_request(char *buf, uint16_t type, uint16_t flags, size_t size) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  return mnl_nlmsg_put_extra_header(nlh, size);
}

static struct nlmsghdr *link_request(char *buf, uint16_t type, uint16_t flags, struct ifinfomsg **ifi) {
  *ifi = put_request(buf, type, flags, sizeof **ifi);
  (*ifi)->ifi_family = AF_UNSPEC;
  return (struct nlmsghdr *)buf;
}

static int pushed_result(lua_State *L, int err, const char *op, const char *arg) {
  if (err)
    return lbox_fail_errno(L, err, op, arg);
  lua_pushboolean(L, 1);
  return 1;
}

/* addr_add(ifname, address, prefixlen) -> true | fail, msg, errno: give an
 * IPv4 address to an interface (`ip addr add ADDRESS/PREFIXLEN dev IFNAME`). */
static int net_addr_add(lua_State *L) {
  const char *name = check_ifname(L, 1);
  const char *text = luaL_checkstring(L, 2);
  lua_Integer prefix = luaL_checkinteger(L, 3);
  luaL_argcheck(L, prefix >= 0 && prefix <= 32, 3, "not a prefix length");
  struct in_addr address;
  luaL_argcheck(L, inet_pton(AF_INET, text, &address) == 1, 2, "not an IPv4 address");
  unsigned index = if_nametoindex(name);
  if (!index)
    return lbox_fail(L, "addr add", name);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct ifaddrmsg *ifa = put_request(buf, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, sizeof *ifa);
  struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = (unsigned char)prefix;
  ifa->ifa_index = index;
  mnl_attr_put(nlh, IFA_LOCAL, sizeof address, &address);
  mnl_attr_put(nlh, IFA_ADDRESS, sizeof address, &address);
  return pushed_result(L, net_talk(nlh), "addr add", text);
}

/* bridge_add(name) -> true | fail, msg, errno: a new bridge, down
 * (`ip link add NAME type bridge`). */
static int net_bridge_add(lua_State *L) {
  const char *name = check_ifname(L, 1);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct ifinfomsg *ifi;
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(nlh, info);
  return pushed_result(L, net_talk(nlh), "bridge add", name);
}

/* link_del(name) -> true | fail, msg, errno (`ip link del NAME`); a veth
 * takes its peer with it. */
static int net_link_del(lua_State *L) {
  const char *name = check_ifname(L, 1);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct ifinfomsg *ifi;
  struct nlmsghdr *nlh = link_request(buf, RTM_DELLINK, 0, &ifi);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  return pushed_result(L, net_talk(nlh), "link del", name);
}

/* link_set(name, changes) -> true | fail, msg, errno: change a link as
 * `ip link set NAME ...` does; `changes` has any of up = true|false,
 * master = "bridge", netns_pid = pid (move it to that process's network
 * namespace), netns_fd = fd (to the namespace open at fd), name = "new". */
static int net_link_set(lua_State *L) {
  const char *name = check_ifname(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_getfield(L, 2, "up");
  int set_up = !lua_isnil(L, -1), up = lua_toboolean(L, -1);
  lua_getfield(L, 2, "master");
  const char *master = lua_isnil(L, -1) ? NULL : check_ifname(L, -1);
  lua_getfield(L, 2, "netns_pid");
  lua_Integer pid = luaL_optinteger(L, -1, 0);
  lua_getfield(L, 2, "netns_fd");
  lua_Integer fd = luaL_optinteger(L, -1, -1);
  lua_getfield(L, 2, "name");
  const char *rename = lua_isnil(L, -1) ? NULL : check_ifname(L, -1);
  unsigned index = if_nametoindex(name), master_index = 0;
  if (!index)
    return lbox_fail(L, "link set", name);
  if (master && !(master_index = if_nametoindex(master)))
    return lbox_fail(L, "link set master", master);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct ifinfomsg *ifi;
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, 0, &ifi);
  ifi->ifi_index = (int)index;
  if (set_up) {
    ifi->ifi_change = IFF_UP;
    ifi->ifi_flags = up ? IFF_UP : 0;
  }
  if (rename)
    mnl_attr_put_strz(nlh, IFLA_IFNAME, rename);
  if (master)
    mnl_attr_put_u32(nlh, IFLA_MASTER, master_index);
  if (pid > 0)
    mnl_attr_put_u32(nlh, IFLA_NET_NS_PID, (uint32_t)pid);
  if (fd >= 0)
    mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)fd);
  return pushed_result(L, net_talk(nlh), "link set", name);
}

/* link_up(name) -> true | fail, msg, errno (`ip link set NAME up`). */
static int net_link_up(lua_State *L) {
  const char *name = check_ifname(L, 1);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct ifinfomsg *ifi;
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, 0, &ifi);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  ifi->ifi_change = IFF_UP;
  ifi->ifi_flags = IFF_UP;
  return pushed_result(L, net_talk(nlh), "link up", name);
}

/* route_add(destination, prefixlen, gateway|nil, ifname) -> true | fail,
 * msg, errno: an IPv4 route in the main table (`ip route add
 * DESTINATION/PREFIXLEN [via GATEWAY] dev IFNAME`); "0.0.0.0", 0 is the
 * default route. */
static int net_route_add(lua_State *L) {
  const char *destination = luaL_checkstring(L, 1);
  lua_Integer prefix = luaL_checkinteger(L, 2);
  const char *gateway = luaL_optstring(L, 3, NULL);
  const char *name = check_ifname(L, 4);
  luaL_argcheck(L, prefix >= 0 && prefix <= 32, 2, "not a prefix length");
  struct in_addr dst, via;
  luaL_argcheck(L, inet_pton(AF_INET, destination, &dst) == 1, 1, "not an IPv4 address");
  luaL_argcheck(L, !gateway || inet_pton(AF_INET, gateway, &via) == 1, 3, "not an IPv4 address");
  unsigned index = if_nametoindex(name);
  if (!index)
    return lbox_fail(L, "route add", name);
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct rtmsg *rtm = put_request(buf, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof *rtm);
  struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
  rtm->rtm_family = AF_INET;
  rtm->rtm_dst_len = (unsigned char)prefix;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rtm->rtm_type = RTN_UNICAST;
  if (prefix > 0)
    mnl_attr_put(nlh, RTA_DST, sizeof dst, &dst);
  if (gateway)
    mnl_attr_put(nlh, RTA_GATEWAY, sizeof via, &via);
  mnl_attr_put_u32(nlh, RTA_OIF, index);
  return pushed_result(L, net_talk(nlh), "route add", destination);
}

/* veth_add(name, peer, peer_pid|nil) -> true | fail, msg, errno: a veth
 * pair, both ends down; with peer_pid the peer is made in that process's
 * network namespace (`ip link add NAME type veth peer name PEER netns PID`). */
static int net_veth_add(lua_State *L) {
  const char *name = check_ifname(L, 1);
  const char *peer = check_ifname(L, 2);
  lua_Integer pid = luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, pid >= 0, 3, "not a process id");
  char buf[MNL_SOCKET_BUFFER_SIZE];
  struct ifinfomsg *ifi;
  struct nlmsghdr *nlh = link_request(buf, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  struct nlattr *info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  struct nlattr *data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  struct nlattr *peer_info = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  struct ifinfomsg *peer_ifi = mnl_nlmsg_put_extra_header(nlh, sizeof *peer_ifi);
  peer_ifi->ifi_family = AF_UNSPEC;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
  if (pid > 0)
    mnl_attr_put_u32(nlh, IFLA_NET_NS_PID, (uint32_t)pid);
  mnl_attr_nest_end(nlh, peer_info);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  return pushed_result(L, net_talk(nlh), "veth add", name);
}

static const luaL_Reg net_funcs[] = {
  {"addr_add", net_addr_add},
  {"bridge_add", net_bridge_add},
  {"link_del", net_link_del},
  {"link_set", net_link_set},
  {"link_up", net_link_up},
  {"route_add", net_route_add},
  {"veth_add", net_veth_add},
  {NULL, NULL}
};

void lbox_open_net(lua_State *L) {
  luaL_setfuncs(L, net_funcs, 0);
}

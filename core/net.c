/* Network interfaces: bringing a link up, as `ip link set NAME up` does.
 * See netdevice(7). */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"

/* link_up(name) -> true | fail, msg, errno: set IFF_UP on interface `name`
 * of this process's network namespace (a new one has "lo", down). */
static int net_link_up(lua_State *L) {
  size_t len;
  const char *name = luaL_checklstring(L, 1, &len);
  luaL_argcheck(L, len > 0 && len < IFNAMSIZ, 1, "not an interface name");
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0)
    return lbox_fail(L, "socket", NULL);
  struct ifreq request;
  memset(&request, 0, sizeof request);
  memcpy(request.ifr_name, name, len);
  int failed = ioctl(sock, SIOCGIFFLAGS, &request) < 0;
  if (!failed) {
    request.ifr_flags |= IFF_UP;
    failed = ioctl(sock, SIOCSIFFLAGS, &request) < 0;
  }
  int err = errno;
  close(sock);
  if (failed)
    return lbox_fail_errno(L, err, "link up", name);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg net_funcs[] = {
  {"link_up", net_link_up},
  {NULL, NULL}
};

void lbox_open_net(lua_State *L) {
  luaL_setfuncs(L, net_funcs, 0);
}

/* Clocks: the monotonic time, for measuring (make bench) without a shell. */
#include <time.h>

#include "core.h"

/* monotonic() -> seconds since an arbitrary point, nanosecond resolution */
static int l_monotonic(lua_State *L) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
    return lbox_fail(L, "clock_gettime", "CLOCK_MONOTONIC");
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static const luaL_Reg clock_funcs[] = {
  {"monotonic", l_monotonic},
  {NULL, NULL}
};

void lbox_open_clock(lua_State *L) {
  luaL_setfuncs(L, clock_funcs, 0);
}

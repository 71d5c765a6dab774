/* nftables through libnftables (libnftables(3)): run a ruleset text as the
 * `nft` command would, in one transaction. Which rules is Lua's choice. */
#define _GNU_SOURCE
#include <errno.h>
#include <nftables/libnftables.h>
#include <string.h>

#include "core.h"

/* nft(commands [, json]) -> output | fail, msg, errno: run `commands` (nft
 * syntax, or JSON when `json` is true) as one transaction; output is what
 * `nft` would print (listings), "" for changes. */
static int nft_run(lua_State *L) {
  const char *commands = luaL_checkstring(L, 1);
  int json = lua_toboolean(L, 2);
  struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx)
    return lbox_fail_errno(L, ENOMEM, "nft", NULL);
  if (json)
    nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  int failed = nft_run_cmd_from_buffer(ctx, commands) != 0;
  if (failed) {
    /* the first line names the problem; the rest points into the input */
    const char *msg = nft_ctx_get_error_buffer(ctx);
    size_t len = msg ? strcspn(msg, "\n") : 0;
    luaL_pushfail(L);
    lua_pushliteral(L, "nft: ");
    if (len)
      lua_pushlstring(L, msg, len);
    else
      lua_pushliteral(L, "failed");
    lua_concat(L, 2);
    lua_pushinteger(L, EINVAL);
    nft_ctx_free(ctx);
    return 3;
  }
  lua_pushstring(L, nft_ctx_get_output_buffer(ctx));
  nft_ctx_free(ctx);
  return 1;
}

static const luaL_Reg nft_funcs[] = {
  {"nft", nft_run},
  {NULL, NULL}
};

void lbox_open_nft(lua_State *L) {
  luaL_setfuncs(L, nft_funcs, 0);
}

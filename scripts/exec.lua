-- lbox exec [-i] [-t] [-e NAME=VALUE] [-w DIR] [-u USER[:GROUP]] CONTAINER COMMAND [ARG...]:
-- run a command in a running container, in all its namespaces and its cgroup.
local container = require "lbox.container"
local core = require "lbox.core"
local errors = require "lbox.errors"
local options = require "lbox.options"
local state = require "lbox.state"
local users = require "lbox.users"

local opts, args = options.command({
  name = "exec", synopsis = { "[-i] [-t] [-e NAME=VALUE] [-w DIR] [-u USER[:GROUP]] CONTAINER COMMAND [ARG...]" },
  summary = "run a command in a running container",
  description = "COMMAND joins every namespace of the container, pid and mount included, and its cgroup, as "
    .. "the container's user unless -u names another. The signals lbox exec gets go on to COMMAND; it exits "
    .. "with COMMAND's status.",
  options = {
    { "interactive", short = "i", help = "keep stdin attached" },
    { "tty", short = "t", help = "a pseudo-terminal for the command" },
    { "env", short = "e", value = "NAME=VALUE", list = true, help = "set an environment variable" },
    { "workdir", short = "w", value = "DIR", help = "the working directory (default: the container's)" },
    { "user", short = "u", value = "USER[:GROUP]", help = "run as this user, name or number (default: the container's)" },
  },
  operands = { 2 },
}, { ... })
if not opts then return 0 end
local first = 1
if opts.user then
  local user, why = users.parse(opts.user)
  if not user then errors.raise("--user: " .. why) end
end
local found = state.find(args[first])
if found.paused and found.status == "running" then
  -- as docker: what is exec'd would join the frozen cgroup and hang there
  errors.raise(string.format("container %s is paused: lbox unpause it first", args[first]), 1)
end
local box, why = container.attach(found)
if not box then errors.raise(why, 1) end
local env = {}
for _, item in ipairs(opts.env or {}) do
  local name, value = item:match("^([^=]+)=(.*)$")
  if not name then errors.raise(string.format("--env %q: use NAME=VALUE", item)) end
  env[name] = value
end
if not opts.interactive then
  local null = assert(core.open("/dev/null"))
  core.dup2(null, 0)
end
local command = table.move(args, first + 1, #args, 1, {})
return box:exec(command, { env = env, workdir = opts.workdir, tty = opts.tty, user = opts.user }).exit_code

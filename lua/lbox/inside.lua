--- What runs inside the container, between the clone and exec: its init
-- steps in order, and the runner that makes sure the child never returns
-- into lbox's code. lbox's side is in lbox.container.
local cgroups = require "lbox.cgroups"
local confine = require "lbox.confine"
local core = require "lbox.core"
local errors = require "lbox.errors"
local exec = require "lbox.exec"
local fs = require "lbox.fs"
local lfs = require "lfs"
-- loaded now: --init needs it after pivot_root, when lbox's files are out of reach
local pid1 = require "lbox.pid1"
local mounts = require "lbox.mounts"
-- loaded by lbox's network step, before the clone, when the init needs it
local network = require "lbox.lazy" "lbox.network"
local users = require "lbox.users"
local wire = require "lbox.wire"

local M = {}

local try = errors.try

-- The namespaces made at clone; "cgroup" is made by the init step
-- cgroup_namespace, once the child is in its cgroup.
M.NAMESPACE_FLAGS = {
  ipc = core.CLONE_NEWIPC,
  mount = core.CLONE_NEWNS,
  net = core.CLONE_NEWNET,
  pid = core.CLONE_NEWPID,
  uts = core.CLONE_NEWUTS,
}

--- Signals sent to lbox that it passes on to the container's PID 1.
M.FORWARDED_SIGNALS = {
  core.SIGINT, core.SIGTERM, core.SIGHUP, core.SIGQUIT, core.SIGUSR1, core.SIGUSR2,
}

-- Blocked in lbox while containers run, and read from a signalfd instead:
-- the forwarded ones, children ending, window changes, and SIGPIPE so that a
-- container gone early cannot kill lbox in the middle of a write.
M.WATCHED_SIGNALS = { core.SIGCHLD, core.SIGWINCH, core.SIGPIPE, table.unpack(M.FORWARDED_SIGNALS) }
-- Reset in the container: ignored signals and the blocked mask survive
-- exec, whether lbox set them or its caller did (nohup, a shell's `trap ''`).
-- All but SIGKILL and SIGSTOP, which cannot change, and 32 and 33, which
-- the C library keeps for its threads.
M.RESET_SIGNALS = {}
for sig = 1, 64 do
  if sig ~= core.SIGKILL and sig ~= core.SIGSTOP and sig ~= 32 and sig ~= 33 then
    M.RESET_SIGNALS[#M.RESET_SIGNALS + 1] = sig
  end
end

M.READ_SIZE = 65536

-- What lbox writes on the sync pipe once the child is in its cgroup.
M.GO = "go"
-- The group of terminals: docker's devpts gid, Debian's "tty".
M.TTY_GID = 5

-- The container's umask: docker's (runc's default).
M.UMASK = tonumber("022", 8)

-- The container's init, after the clone, in order. Each step gets the init
-- context { sync_fd, error_fd, console, spec, plan, payload, join_fds } and
-- raises on failure; the last one replaces the process with the command.
M.steps = {
  { "die_with_lbox", function()
    -- if lbox is killed, the container goes too, and the next run sweeps its cgroup
    try("cannot set the parent-death signal", core.set_pdeathsig(core.SIGKILL))
  end },
  { "await_cgroup", function(ctx)
    -- sync 1: blocks until lbox has put this process in its cgroup; the
    -- spec came with the fork
    local word = try("cannot hear from lbox", core.read(ctx.sync_fd, #M.GO))
    core.close(ctx.sync_fd)
    if word ~= M.GO then errors.raise("lbox ended before the container could start") end
  end },
  { "userns_root", function(ctx)
    -- lbox has written the maps: from host root, unmapped here, to the
    -- namespace's root, so that what it makes is the container root's
    if ctx.spec.userns then
      try("cannot become the user namespace's root", core.setgroups({}))
      try("cannot become the user namespace's root", core.setgid(0))
      try("cannot become the user namespace's root", core.setuid(0))
    end
  end },
  { "private_mounts", function()
    -- before any mount: nothing mounted here may propagate back to the host
    try("cannot make mounts private", core.mount(nil, "/", nil, core.MS_REC | core.MS_PRIVATE))
  end },
  { "join_namespaces", function(ctx)
    -- those of another container, opened by lbox before the clone (pid: at the clone)
    for name, fd in pairs(ctx.join_fds) do
      if name ~= "pid" then
        try("cannot join the " .. name .. " namespace", core.setns(fd, M.NAMESPACE_FLAGS[name]))
      end
    end
  end },
  { "cgroup_namespace", function(ctx)
    -- after await_cgroup: the child is in its cgroup, which becomes the
    -- namespace's root, so /proc/self/cgroup shows "0::/"
    if ctx.spec.namespaces.cgroup then
      try("cannot create a cgroup namespace", core.unshare(core.CLONE_NEWCGROUP))
    end
  end },
  { "hostname", function(ctx)
    if ctx.spec.namespaces.uts then
      try("cannot set the hostname", core.sethostname(ctx.spec.hostname))
    end
  end },
  { "loopback", function(ctx)
    -- a new network namespace's lo is down; docker's --network none has it up
    if ctx.spec.namespaces.net then try("cannot bring up the loopback interface", core.link_up("lo")) end
  end },
  { "eth0", function(ctx)
    -- a network's: put here by lbox's veth step before it let this process
    -- go on; its address came with the fork (lbox's network step)
    if ctx.spec.network_config then network.configure_inside(ctx.spec.network_config) end
  end },
  { "mount_root", function(ctx) mounts.mount_root(ctx.spec.root, ctx.spec.read_only, ctx.plan.nodev) end },
  -- a spec's own list of mounts (an OCI config's) replaces lbox's /proc,
  -- /sys, cgroups and /dev
  { "mount_list", function(ctx)
    if ctx.spec.mounts then mounts.mount_list(ctx.spec.root, ctx.spec.mounts, ctx) end
  end },
  { "mount_proc", function(ctx) if not ctx.spec.mounts then mounts.mount_proc(ctx.spec.root) end end },
  { "mount_sys", function(ctx) if not ctx.spec.mounts then mounts.mount_sys(ctx.spec.root) end end },
  { "mount_cgroups", function(ctx)
    if not ctx.spec.mounts then
      mounts.mount_cgroups(ctx.spec.root, cgroups.unified(), ctx.spec.cgroup_paths, ctx.spec.namespaces.cgroup)
    end
  end },
  { "mount_dev", function(ctx)
    -- in a user namespace no node can be made: the host's are bound
    if not ctx.spec.mounts then mounts.mount_dev(ctx.spec.root, ctx.console, ctx.spec.shm_size, ctx.spec.userns ~= nil) end
  end },
  { "mount_volumes", function(ctx) mounts.mount_volumes(ctx.spec.root, ctx.spec.volumes, ctx.plan.nodev) end },
  { "mount_tmpfs", function(ctx) mounts.mount_tmpfs(ctx.spec.root, ctx.spec.tmpfs) end },
  { "mount_etc_files", function(ctx) mounts.mount_etc_files(ctx.spec.root) end },
  -- the planned nodes: --device ones, or the host's with --privileged
  { "devices", function(ctx) mounts.make_devices(ctx.spec.root, ctx.plan.devices, ctx.spec.userns ~= nil) end },
  -- in the container's /proc, before mask_paths makes /proc/sys read-only
  { "sysctl", function(ctx) mounts.write_sysctl(ctx.spec.root, ctx.spec.sysctl) end },
  { "mask_paths", function(ctx)
    if not ctx.spec.privileged then
      mounts.mask_paths(ctx.spec.root, ctx.spec.masked_paths, ctx.spec.readonly_paths)
    end
  end },
  { "pivot_root", function(ctx) mounts.pivot(ctx.spec.root) end },
  { "workdir", function(ctx)
    local dir = ctx.spec.workdir or "/"
    try("cannot create the working directory " .. dir, fs.mkdir_p(dir))
    try("cannot enter the working directory", core.chdir(dir))
  end },
  { "read_only", function(ctx)
    if ctx.spec.read_only then mounts.make_read_only() end
  end },
  { "stdio", function(ctx)
    -- descriptors of lbox's the spec names (a pipe to another container, say)
    for fd, name in pairs { [0] = "stdin", [1] = "stdout", [2] = "stderr" } do
      local from = ctx.spec.stdio[name]
      if from then try("cannot attach " .. name, core.dup2(from, fd)) end
    end
    -- a session of its own: lbox's terminal, the user's, stays out of reach
    -- (/dev/tty), and only lbox gets that terminal's signals
    try("cannot start a session", core.setsid())
    if ctx.console then
      -- the container's own terminal, opened again as its /dev/console
      local console = try("cannot open the console", core.open("/dev/console", "rw"))
      -- as docker's, whatever the host's devpts gives: root:tty, 0620
      try("cannot give the console to the tty group", core.fchown(console, 0, M.TTY_GID))
      try("cannot set the console's mode", core.fchmod(console, tonumber("620", 8)))
      try("cannot take the terminal", core.set_controlling_tty(console))
      for fd = 0, 2 do try("cannot attach the terminal", core.dup2(console, fd)) end
    elseif not ctx.spec.stdin and not ctx.spec.stdio.stdin then
      local null = try("cannot open /dev/null", core.open("/dev/null", "r"))
      try("cannot detach stdin", core.dup2(null, 0))
    end
    -- and nothing else: what lbox inherited (a shell's 3</etc/shadow) stays out
    try("cannot close lbox's descriptors", core.cloexec_from(3))
  end },
  { "ulimits", function(ctx)
    -- while lbox may still raise a hard limit (CAP_SYS_RESOURCE)
    for name, limit in pairs(ctx.plan.ulimits) do
      local ok, msg, errno = core.setrlimit(name, math.tointeger(limit.soft), math.tointeger(limit.hard))
      if not ok and limit.default and errno == core.EPERM then
        -- a default lbox may not raise (no CAP_SYS_RESOURCE): as far as it can
        local _, hard = core.getrlimit(name)
        ok, msg = core.setrlimit(name, hard, hard)
      end
      try("cannot set the " .. name .. " limit", ok, msg)
    end
  end },
  { "oom_score_adj", function(ctx)
    -- while lbox may still lower it (CAP_SYS_RESOURCE)
    if ctx.spec.oom_score_adj then
      local f, msg = io.open("/proc/self/oom_score_adj", "w")
      local ok = f and f:write(tostring(ctx.spec.oom_score_adj))
      if f then ok, msg = f:close() end
      try("cannot set the OOM score adjustment", ok, msg)
    end
  end },
  { "keyring", function() confine.new_keyring() end },
  { "no_new_privileges", function(ctx) confine.no_new_privileges(ctx.spec) end },
  { "seccomp", function(ctx) confine.seccomp(ctx.plan.seccomp_program) end },
  { "bounding_set", function(ctx) confine.bounding_set(ctx.spec) end },
  { "user", function(ctx)
    -- as another user, lbox could not set up anything
    M.become_user(ctx.spec.user, ctx.spec.env, ctx.terminal, ctx.spec.groups)
  end },
  { "capabilities", function(ctx) confine.capabilities(ctx.spec) end },
  { "signals", function() M.reset_signals() end },
  { "exec", function(ctx)
    if ctx.payload then
      -- a Lua function as the container's PID 1: its result is the exit
      -- code. It keeps stdio only, as a program would; closing the error
      -- pipe tells lbox the container has started.
      try("cannot close lbox's descriptors", core.close_range(3))
      local ok, result = xpcall(ctx.payload, debug.traceback, ctx)
      if not ok then io.stderr:write("lbox: the container's Lua payload failed: ", tostring(result), "\n") end
      io.stdout:flush()
      io.stderr:flush()
      core._exit(ok and (math.tointeger(result) or (result == false and 1) or 0) or 1)
    end
    -- --init: a small init as PID 1, the command as its child
    if ctx.spec.init then pid1.run(ctx.spec.command, ctx.spec.env) end
    exec.execvp(ctx.spec.command, ctx.spec.env)
  end },
}

-- The namespaces exec joins, in order: the cgroup namespace after the
-- cgroup itself, the mount namespace last (it changes / and the cwd).
M.JOINED_NAMESPACES = {
  { "cgroup", core.CLONE_NEWCGROUP }, { "ipc", core.CLONE_NEWIPC }, { "uts", core.CLONE_NEWUTS },
  { "net", core.CLONE_NEWNET }, { "pid", core.CLONE_NEWPID }, { "mnt", core.CLONE_NEWNS },
}

local function init_step(name)
  for _, step in ipairs(M.steps) do
    if step[1] == name then return step end
  end
  error("no init step " .. tostring(name), 2)
end

-- What `exec` runs in its child, in order, up to the command: into the
-- running container's cgroup and namespaces, then the init's own last
-- steps. Each gets the exec context { error_fd, cgroup, process (a pidfd of
-- PID 1), terminal (a pty's slave | nil), workdir, supervise (child pid ->
-- exit code), spec = { user, env, command, capabilities, no_new_privileges },
-- plan = { seccomp_program, ulimits } }.
M.exec_steps = {
  { "join_cgroup", function(ctx)
    if ctx.cgroup then try("cannot join the container's cgroup", ctx.cgroup:attach(core.getpid())) end
  end },
  { "join_namespaces", function(ctx)
    for _, ns in ipairs(M.JOINED_NAMESPACES) do
      -- a namespace the container shares with lbox is joined as well: no change
      try("cannot join the container's " .. ns[1] .. " namespace", core.setns(ctx.process, ns[2]))
    end
    -- its user namespace last: the host's root may join the others (a
    -- cgroup namespace it shares with lbox too), and then is its root
    if ctx.spec.userns then
      try("cannot join the container's user namespace", core.setns(ctx.process, core.CLONE_NEWUSER))
    end
  end },
  { "enter_pid_namespace", function(ctx)
    -- setns(pid) places children only: the command runs in a child, and
    -- this process passes lbox's signals on to it until it ends
    local child = try("cannot create the process", core.clone(0))
    if child ~= 0 then
      core.close(ctx.error_fd)
      core._exit(ctx.supervise(child))
    end
  end },
  { "workdir", function(ctx)
    try("cannot enter the working directory", core.chdir(ctx.workdir))
  end },
  { "terminal", function(ctx)
    -- a session of its own in any case: lbox's terminal stays out of reach
    try("cannot start a session", core.setsid())
    if ctx.terminal then
      try("cannot take the terminal", core.set_controlling_tty(ctx.terminal))
      for fd = 0, 2 do try("cannot attach the terminal", core.dup2(ctx.terminal, fd)) end
    end
    try("cannot close lbox's descriptors", core.cloexec_from(3))
  end },
  -- the container's ulimits, as docker exec gives them (not lbox's)
  init_step("ulimits"),
  -- confined as the init is, in the same order
  init_step("keyring"),
  init_step("no_new_privileges"),
  init_step("seccomp"),
  init_step("bounding_set"),
  init_step("user"),
  init_step("capabilities"),
  init_step("signals"),
  init_step("exec"),
}

--- Every signal to its default action, none blocked: as a fresh process.
function M.reset_signals()
  try("cannot reset signals", core.signal(M.RESET_SIGNALS, "default"))
  try("cannot unblock signals", core.sigmask("set", {}))
end

--- Become `user` ({ name, group } of a spec; root when nil) as the
-- container's /etc/passwd and /etc/group know it, and give `env` the
-- user's HOME unless it has one; `terminal` (exec's pty slave | nil) is
-- then the user's, as docker gives it: user:tty, 0620; `extra_groups`
-- (gids | nil) are supplementary groups besides /etc/group's, as docker's
-- --group-add and OCI's additionalGids. Runs in the container's root.
function M.become_user(user, env, terminal, extra_groups)
  local found, msg = users.resolve(user and user.name or "0", user and user.group,
    fs.read_file("/etc/passwd"), fs.read_file("/etc/group"))
  if not found then errors.raise(msg) end
  env.HOME = env.HOME or found.home
  -- root too: the groups and umask lbox runs with are the host's, not the
  -- container's
  core.umask(M.UMASK)
  M.give_stdio(found.uid)
  if terminal then
    try("cannot give the user its terminal", core.fchown(terminal, found.uid, M.TTY_GID))
    try("cannot set the terminal's mode", core.fchmod(terminal, tonumber("620", 8)))
  end
  local has = {}
  for _, gid in ipairs(found.groups) do has[gid] = true end
  for _, gid in ipairs(extra_groups or {}) do
    if not has[gid] then found.groups[#found.groups + 1], has[gid] = gid, true end
  end
  try("cannot set the groups", core.setgroups(found.groups))
  try("cannot set the group", core.setgid(found.gid))
  try("cannot set the user", core.setuid(found.uid))
end

--- Make the user the owner of the container's stdio, as runc does, so that
-- it can open them again (/dev/stdout, /proc/self/fd/1, a shell's
-- `exec >/dev/tty`): the pipes, and the terminal when it is the container's
-- own console. Never a file or a terminal of the host's that lbox was
-- given: those keep their owner.
function M.give_stdio(uid)
  local console = lfs.attributes("/dev/console")
  for fd = 0, 2 do
    local stdio = lfs.attributes("/proc/self/fd/" .. fd)
    local own = stdio and (stdio.mode == "named pipe" or stdio.mode == "socket"
      or (console and console.mode == "char device" and stdio.mode == "char device" and stdio.rdev == console.rdev))
    if own and stdio.uid ~= uid then
      -- in a user namespace, lbox's pipes are the host root's, whom it
      -- does not map: they stay so (as runc leaves them)
      local ok, msg, errno = core.fchown(fd, uid)
      if not ok and errno ~= core.EPERM and errno ~= core.EINVAL then
        errors.raise("cannot give the user its stdio: " .. msg)
      end
    end
  end
end

--- Everything `fd` gives until end of file. @return string | nil, message
function M.read_to_end(fd)
  local chunks = {}
  repeat
    local chunk, msg = core.read(fd, M.READ_SIZE)
    if not chunk then return nil, msg end
    chunks[#chunks + 1] = chunk
  until chunk == ""
  return table.concat(chunks)
end

-- The one protocol between a forked child and lbox, for the container's
-- init, exec, the monitor of a detached container and the helper that
-- mounts an ended container's layer. The child, on its close-on-exec
-- pipe, writes either
--   nothing: it exec'd (or died: end of file without a word);
--   READY, then closes it: set up, it goes on (a monitor, a helper);
--   a report { message, code }, then _exits with code: it failed.
-- The parent reads it with read_report and raises the report as it is.

local READY = { ready = true }

--- The parent's side: what the child said before the pipe's end.
-- @return report { message, code } | nil, "ready" | nil (exec'd, or died)
function M.read_report(fd)
  local data = M.read_to_end(fd) or ""
  if data == "" then return nil end
  local said = wire.decode(data)
  if type(said) == "table" and said.ready then return nil, "ready" end
  return said
end

--- The child's side, once set up: say so, and close the pipe.
function M.ready(fd)
  core.write(fd, wire.encode(READY))
  core.close(fd)
end

--- The child's side: run `fn(...)` under xpcall; when it raises, write the
-- report on `fd` and leave with _exit, never returning into lbox's code.
-- A user error travels as it is; anything else is a bug of `where`.
-- @return what fn returned
function M.guard(fd, where, fn, ...)
  local results = table.pack(xpcall(fn, function(e)
    if errors.is_user_error(e) then return e end
    return { message = "internal error in " .. where .. ": " .. debug.traceback(tostring(e), 2),
             code = errors.codes.lbox }
  end, ...))
  if results[1] then return table.unpack(results, 2, results.n) end
  local report = results[2]
  core.write(fd, wire.encode { message = report.message, code = report.code })
  core._exit(report.code)
end

--- Run `steps` in a cloned child with context `ctx` ({ error_fd, ... }).
-- The last step execs; if it returns, that is a failure too.
function M.run(steps, ctx)
  M.guard(ctx.error_fd, "the container's init", function()
    for _, step in ipairs(steps) do step[2](ctx) end
    errors.raise("init ended without exec")
  end)
end

return M

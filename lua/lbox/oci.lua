--- The OCI runtime (runc's command line, `lbox oci`): containers of a
-- bundle's config.json (lbox.oci_config), started by lbox's own engine
-- (lbox.container) and recorded under the runtime's root (--root, default
-- /run/lbox-oci), one directory per id. `create` leaves the container's
-- init waiting before exec, on the fifo `exec.fifo` of its directory,
-- and exits; the init lives on as its caller's child (conmon's, a
-- shim's: subreapers), and `start` opens the fifo, which lets it go. What
-- a container is now (creating, created, running, paused, stopped) is read
-- from the kernel each time, never from a stale file.
local cgroups = require "lbox.cgroups"
local cjson = require "cjson"
local container = require "lbox.container"
local core = require "lbox.core"
local errors = require "lbox.errors"
local exec = require "lbox.exec"
local fs = require "lbox.fs"
local inside = require "lbox.inside"
local lfs = require "lfs"
local oci_config = require "lbox.oci_config"
local spec_check = require "lbox.spec"
local state = require "lbox.state"

local M = {}

M.DEFAULT_ROOT = "/run/lbox-oci"
M.root = M.DEFAULT_ROOT

local FIFO = "exec.fifo"
local STOP_POLL_MS, STOP_TRIES = 20, 500

-- runtime errors: one line, exit 1, as runc's
local function fail(fmt, ...)
  errors.raise(string.format(fmt, ...), 1)
end

local function try(what, value, msg, ...)
  if value == nil or value == false then fail("%s: %s", what, tostring(msg)) end
  return value, msg, ...
end

--- Is `id` a container id runc would take?
function M.valid_id(id)
  return type(id) == "string" and #id > 0 and #id <= 1024 and id:match("^[%w_+.-]+$") ~= nil
    and id ~= "." and id ~= ".."
end

function M.dir(id)
  return M.root .. "/" .. id
end

local function check_id(id)
  if not M.valid_id(id) then fail("invalid container id %q: letters, digits, '_', '+', '.' and '-'", tostring(id)) end
end

--- The record of container `id` | nil when there is none.
function M.read(id)
  return fs.read_json(M.dir(id) .. "/state.json")
end

--- The record of `id`; raises "does not exist" (exit 1) when none.
function M.find(id)
  check_id(id)
  local record = M.read(id)
  if not record then fail("container %s does not exist", id) end
  return record
end

local function json(value)
  return (cjson.encode(value):gsub("\\/", "/"))
end

-- Write `text` to `path` atomically: a reader sees the old or the new.
local function write_atomically(path, text)
  local tmp = path .. ".tmp"
  fs.write_file(tmp, text)
  try("cannot write " .. path, os.rename(tmp, path))
end

--- Merge `changes` into the record of `id`, under its lock, atomically.
function M.update(id, changes)
  local lock = try("cannot lock the state of " .. id, core.open(M.dir(id) .. "/lock", "create"))
  core.flock(lock, "exclusive")
  local record = M.read(id) or { id = id }
  for k, v in pairs(changes) do record[k] = v end
  write_atomically(M.dir(id) .. "/state.json", json(record))
  core.close(lock)
  return record
end

-- The state letter of process `pid` (R, S, Z...) when it is the process
-- that started at `start` | nil when that process is gone.
local function process_state(pid, start)
  if not pid then return nil end
  local stat = fs.read_file("/proc/" .. pid .. "/stat")
  local letter = stat and stat:match("^.*%) (%a)")
  if not letter or state.process_start(pid) ~= start then return nil end
  return letter
end

--- Is the container's init alive (a zombie is not)?
function M.alive(record)
  local letter = process_state(record.pid, record.pid_start)
  return letter ~= nil and letter ~= "Z" and letter ~= "X"
end

local function group_of(record)
  local ok, group = pcall(cgroups.open, record.lbox_id)
  return ok and group or nil
end

--- The status of `record`, from the kernel: creating (no init yet, its
-- creator alive), created (the init waits on the fifo), running, paused
-- (frozen) or stopped.
function M.status(record)
  if not record.pid then
    return process_state(record.creator, record.creator_start) and "creating" or "stopped"
  end
  if not M.alive(record) then return "stopped" end
  if fs.exists(M.dir(record.id) .. "/" .. FIFO) then return "created" end
  local group = group_of(record)
  if group and group:frozen() then return "paused" end
  return "running"
end

--- The runtime-spec's state of `record`.
function M.public_state(record)
  local status = M.status(record)
  local public = { ociVersion = oci_config.OCI_VERSION, id = record.id, status = status, bundle = record.bundle,
                   annotations = record.annotations or {} }
  if status ~= "stopped" and record.pid then public.pid = record.pid end
  return public
end

--- The runtime-spec's state of `record` as JSON (an empty table is an object).
function M.state_json(record)
  return json(M.public_state(record))
end
local state_json = M.state_json

-- Run the hooks of `kind` (lbox.oci_config), the state on their stdin; a
-- hook that fails or outlasts its timeout raises.
local function run_hooks(record, hooks, kind)
  for _, hook in ipairs(hooks[kind] or {}) do
    local input = state_json(record)
    local r, w = try("cannot create a pipe", core.pipe())
    local pid = try("cannot run the " .. kind .. " hook", core.clone(0))
    if pid == 0 then
      core.dup2(r, 0)
      core.execve(hook.path, hook.args, hook.env)
      core._exit(127)
    end
    core.close(r)
    core.write(w, input)
    core.close(w)
    local how, code
    local deadline = hook.timeout and hook.timeout * 1000 // STOP_POLL_MS
    local rounds = 0
    repeat
      local reaped
      reaped, how, code = core.waitpid(pid, "nohang")
      if reaped == pid and how ~= "stopped" then break end
      rounds = rounds + 1
      if deadline and rounds > deadline then
        core.kill(pid, core.SIGKILL)
        core.waitpid(pid)
        fail("%s hook %s: timed out after %d s", kind, hook.path, hook.timeout)
      end
      core.poll({}, STOP_POLL_MS)
    until false
    if how ~= "exited" or code ~= 0 then
      fail("%s hook %s failed: %s %d", kind, hook.path, how == "exited" and "exit status" or "signal", code)
    end
  end
end

-- The pid file, written whole or not at all (runc's --pid-file).
local function write_pid_file(path, pid)
  if path then write_atomically(path, tostring(pid)) end
end

local function absolute(path)
  if path and path:sub(1, 1) ~= "/" then return lfs.currentdir() .. "/" .. path end
  return path
end

-- The terminal step for --console-socket: a pty whose master goes to the
-- socket's listener (SCM_RIGHTS, as runc), sized as the config says.
local function console_step(socket_path, size)
  return function(c)
    c.undo:push("close the terminal", function() c:close_fds("pty_master", "pty_slave") end)
    c.pty_master, c.pty_slave, c.console = try("cannot allocate a pseudo-terminal", core.openpty())
    if size and size[1] > 0 and size[2] > 0 then core.set_winsize(c.pty_master, size[1], size[2]) end
    local sock = try("cannot connect to the console socket", core.unix_connect(socket_path))
    local ok, msg = core.send_fd(sock, c.pty_master, "/dev/ptmx")
    core.close(sock)
    try("cannot send the console to " .. socket_path, ok, msg)
    c:close_fds("pty_master")
  end
end

-- Remove what `record` holds of the host: its cgroup (its processes
-- killed), then its directory.
local function remove_traces(record)
  local group = group_of(record)
  if group then
    for _ = 1, STOP_TRIES do
      if group:frozen() then group:freeze(false) end
      if not group:kill() then
        for _, pid in ipairs(M.processes(record, group)) do core.kill(pid, core.SIGKILL) end
      end
      if group:remove() then break end
      core.poll({}, STOP_POLL_MS)
    end
    local ok, msg = group:remove()
    if not ok then fail("cannot remove the cgroup of %s: %s", record.id, msg) end
  end
  fs.remove_tree(M.dir(record.id))
end

--- The annotation that names a Lua recipe for the container.
M.RECIPE_ANNOTATION = "org.lbox.recipe"

--- Load the recipe at `path` (an absolute path): a Lua chunk returning a
-- function(box) that adds steps (box:before, box:after, box:replace), as
-- an lbox run recipe can. Raises (exit 1) when it cannot.
function M.apply_recipe(box, path)
  if path:sub(1, 1) ~= "/" then fail("annotation %s: %q is not an absolute path", M.RECIPE_ANNOTATION, path) end
  local chunk, msg = loadfile(path, "t")
  if not chunk then fail("annotation %s: %s", M.RECIPE_ANNOTATION, msg) end
  local add_steps = chunk()
  if type(add_steps) ~= "function" then
    fail("annotation %s: %s must return a function(box)", M.RECIPE_ANNOTATION, path)
  end
  add_steps(box)
end

--- A container of the bundle at `bundle` (config.json and its root),
-- not started and kept out of lbox oci's state: an lbox container like
-- any other, whose steps (box:steps(), before, after, replace) a REPL can
-- look at and change before box:start(). The root is the bundle's, as it
-- is. @return box, extra { annotations, hooks, console_size }
function M.load(bundle)
  bundle = absolute(bundle or ".")
  local spec, extra = oci_config.to_spec(oci_config.read(bundle), bundle, fs.random_hex(32))
  local box = container.new(spec, oci_config.LABELS)
  box:replace("rootfs", function(c) c.spec.root = { path = c.spec.rootfs, files = {} } end)
  return box, extra
end

--- Make container `opts.id` of the bundle `opts.bundle`: every mount,
-- namespace and limit in place, its init waiting before exec (unless
-- `opts.started`: then it runs). With `opts.foreground` (run), this
-- process stays its parent and waits for it. @return record, box
function M.create(opts)
  check_id(opts.id)
  local bundle = absolute(opts.bundle or ".")
  local config = oci_config.read(bundle)
  try("cannot create " .. M.root, fs.mkdir_p(M.root))
  local dir = M.dir(opts.id)
  -- mkdir is the id's claim: one of two creates of an id wins
  local made, _, errno = lfs.mkdir(dir)
  if not made then
    if errno == core.EEXIST or fs.exists(dir) then fail("container with id %s already exists", opts.id) end
    fail("cannot create %s", dir)
  end
  local lbox_id = fs.random_hex(32)
  local record
  local ok, err = pcall(function()
    record = M.update(opts.id, { id = opts.id, lbox_id = lbox_id, bundle = bundle,
      created = os.date("!%Y-%m-%dT%H:%M:%SZ"), creator = core.getpid(),
      creator_start = state.process_start(core.getpid()), owner = "root" })
    local spec, extra = oci_config.to_spec(config, bundle, lbox_id)
    record = M.update(opts.id, { annotations = extra.annotations, hooks = extra.hooks })
    if spec.tty and not opts.console_socket and not opts.foreground then
      fail("process.terminal needs --console-socket: the container runs apart from this process")
    end
    local box = container.new(spec, oci_config.LABELS)
    -- Lua stays in charge: a recipe named by the config adds its steps
    local recipe = extra.annotations[M.RECIPE_ANNOTATION]
    if recipe then M.apply_recipe(box, recipe) end
    -- the state lives here, not in lbox's store; the root is the bundle's, as it is
    box:replace("directory", function() end)
    box:replace("rootfs", function(c) c.spec.root = { path = c.spec.rootfs, files = {} } end)
    if opts.console_socket and spec.tty then box:replace("terminal", console_step(opts.console_socket, extra.console_size)) end
    if opts.no_new_keyring then box:replace("keyring", function() end) end
    if not opts.foreground then
      -- the init outlives this process
      box:replace("die_with_lbox", function() end)
    end
    if not opts.started then
      local fifo = dir .. "/" .. FIFO
      local umask = core.umask(0)
      local fifo_made, msg = core.mknod(fifo, "fifo", tonumber("622", 8))
      core.umask(umask)
      try("cannot create " .. fifo, fifo_made, msg)
      box:before("pivot_root", "open_exec_fifo", function(ctx)
        -- named now, opened for writing at the end through /proc/self/fd:
        -- after pivot_root the path is out of reach
        ctx.exec_fifo = errors.try("cannot open the exec fifo", core.open(fifo, "path"))
      end)
      box:before("exec", "await_start", function(ctx)
        -- "not found" belongs to create, as runc says it
        exec.lookup(ctx.spec.command, ctx.spec.env)
        inside.ready(ctx.error_fd)
        local fd = errors.try("cannot open the exec fifo", core.open("/proc/self/fd/" .. ctx.exec_fifo, "w"))
        core.write(fd, "0")
        core.close(fd)
        core.close(ctx.exec_fifo)
      end)
    end
    box:start()
    fs.write_file(dir .. "/seccomp.bpf", box.plan.seccomp_program or "")
    record = M.update(opts.id, { pid = box.pid, pid_start = state.process_start(box.pid), env = box.spec.env,
      workdir = box.spec.workdir, user = box.spec.user, capabilities = box.spec.capabilities,
      no_new_privileges = box.spec.no_new_privileges, ulimits = box.plan.ulimits })
    write_pid_file(opts.pid_file, box.pid)
    if not opts.foreground then box:release() end
    record.box = box
  end)
  if not ok then
    if record then pcall(remove_traces, record) else fs.remove_tree(dir) end
    error(err, 0)
  end
  local box = record.box
  record.box = nil
  local hooked, why = pcall(function()
    run_hooks(record, record.hooks, "createRuntime")
    run_hooks(record, record.hooks, "prestart")
  end)
  if not hooked then
    if box.state ~= "released" then box:destroy() end
    pcall(M.delete, opts.id, true)
    error(why, 0)
  end
  return record, box
end

--- Let the created container `id` exec its process.
function M.start(id)
  local record = M.find(id)
  local status = M.status(record)
  if status ~= "created" then fail("cannot start a container that is %s", status) end
  local fifo = M.dir(id) .. "/" .. FIFO
  local fd = try("cannot open the exec fifo", core.open(fifo, "nonblock"))
  local word
  repeat
    if (core.poll({ fd }, 100) or {})[fd] then
      word = core.read(fd, 1)
      if word == "" then break end
    elseif not M.alive(record) then
      break
    end
  until word
  core.close(fd)
  os.remove(fifo)
  if word ~= "0" then fail("container %s ended before it could start", id) end
  local ok, why = pcall(run_hooks, record, record.hooks, "poststart")
  if not ok then
    pcall(M.delete, id, true)
    error(why, 0)
  end
end

--- The processes of the container: those of its cgroup.
function M.processes(record, group)
  group = group or group_of(record)
  local pids = {}
  for _, path in ipairs(group and group:paths() or {}) do
    for pid in (fs.read_file(path .. "/cgroup.procs") or ""):gmatch("%d+") do pids[#pids + 1] = math.tointeger(pid) end
    if #pids > 0 then break end
  end
  table.sort(pids)
  return pids
end

-- Linux's signal numbers (x86, arm), by name
local SIGNALS = {
  HUP = 1, INT = 2, QUIT = 3, ILL = 4, TRAP = 5, ABRT = 6, IOT = 6, BUS = 7, FPE = 8, KILL = 9, USR1 = 10,
  SEGV = 11, USR2 = 12, PIPE = 13, ALRM = 14, TERM = 15, STKFLT = 16, CHLD = 17, CONT = 18, STOP = 19,
  TSTP = 20, TTIN = 21, TTOU = 22, URG = 23, XCPU = 24, XFSZ = 25, VTALRM = 26, PROF = 27, WINCH = 28,
  IO = 29, POLL = 29, PWR = 30, SYS = 31,
}

--- A signal by number or name ("TERM", "SIGTERM", "15", "RTMIN+2").
function M.signal(text)
  local n = math.tointeger(tonumber(text or "15"))
  if not n then
    local name = text:upper():gsub("^SIG", "")
    n = SIGNALS[name]
    local offset = name:match("^RTMIN%+(%d+)$")
    if name == "RTMIN" then n = 34 elseif offset then n = 34 + tonumber(offset) end
  end
  if not n or n < 1 or n > 64 then fail("unknown signal %q", tostring(text)) end
  return n
end

--- Send `sig` to the init of `id`, or with `all` to every process of it.
function M.kill(id, sig, all)
  local record = M.find(id)
  local status = M.status(record)
  if status == "stopped" or status == "creating" then fail("container %s is not running", id) end
  if all then
    for _, pid in ipairs(M.processes(record)) do core.kill(pid, sig) end
    return
  end
  local process = core.pidfd_open(record.pid)
  if not process or state.process_start(record.pid) ~= record.pid_start then
    if process then core.close(process) end
    fail("container %s is not running", id)
  end
  local ok, msg = core.pidfd_send_signal(process, sig)
  core.close(process)
  try("cannot signal container " .. id, ok, msg)
end

--- Remove container `id`: refused while it runs unless `force`, which
-- kills it first. Every trace goes: processes, cgroup, state.
function M.delete(id, force)
  local record = M.find(id)
  local status = M.status(record)
  if (status == "running" or status == "paused" or status == "creating") and not force then
    fail("cannot delete container %s that is not stopped: %s", id, status)
  end
  if M.alive(record) then
    local group = group_of(record)
    if group and group:frozen() then group:freeze(false) end
    local process = core.pidfd_open(record.pid)
    if process then
      core.pidfd_send_signal(process, core.SIGKILL)
      core.close(process)
    end
    for _ = 1, STOP_TRIES do
      if not M.alive(record) then break end
      core.poll({}, STOP_POLL_MS)
    end
    if M.alive(record) then fail("container %s did not end after SIGKILL", id) end
  end
  remove_traces(record)
  local ok, why = pcall(run_hooks, record, record.hooks or {}, "poststop")
  if not ok then io.stderr:write("lbox-oci: warning: ", tostring(errors.is_user_error(why) and why.message or why), "\n") end
end

--- Freeze (`frozen`) or thaw the processes of `id`.
function M.pause(id, frozen)
  local record = M.find(id)
  local status = M.status(record)
  if frozen and status ~= "running" then fail("container %s is not running: %s", id, status) end
  if not frozen and status ~= "paused" then fail("container %s is not paused: %s", id, status) end
  local group = group_of(record) or fail("container %s has no cgroup", id)
  try("cannot " .. (frozen and "pause" or "resume") .. " " .. id, group:freeze(frozen))
end

--- Change the limits of container `id` (lbox.spec's `limits`, from
-- lbox.oci_config.limits) in its cgroup, as the host's hierarchies take them.
function M.update_limits(id, limits)
  local record = M.find(id)
  local status = M.status(record)
  if status == "stopped" or status == "creating" then fail("container %s is not running", id) end
  local checked = {}
  spec_check.check_limits(limits, checked, function(field, fmt, ...)
    fail("%s: " .. fmt, oci_config.LABELS[field] or field, ...)
  end)
  local writes, field, msg = cgroups.plan(checked)
  if not writes then fail("%s: %s", oci_config.LABELS[field] or field, msg) end
  local group = group_of(record) or fail("container %s has no cgroup", id)
  local function write(w)
    if not group.controllers[w[1]] then fail("container %s has no %s cgroup to update", id, w[1]) end
    local path = cgroups.hierarchy(w[1]) .. "/" .. group.name .. "/" .. w[2]
    local f, why = io.open(path, "w")
    local ok = f and f:write(w[3])
    if f then ok, why = f:close() end
    return ok, why
  end
  -- v1 keeps memory at or below memory+swap: a raise needs the second
  -- file first, a cut the first; a write refused is tried again last
  local refused = {}
  for _, w in ipairs(writes) do
    if not write(w) then refused[#refused + 1] = w end
  end
  for _, w in ipairs(refused) do
    local ok, why = write(w)
    if not ok then fail("cannot set %s of %s: %s", w[2], id, tostring(why)) end
  end
end

--- Every container's record, by id.
function M.list()
  local list = {}
  for name in fs.dir(M.root) do
    local record = M.valid_id(name) and M.read(name)
    if record then list[#list + 1] = record end
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return list
end

--- Run `argv` in the running container `id` (lbox.container's exec), with
-- `opts` { env = map, replace_env, cwd, user, tty }. @return status
function M.exec(id, argv, opts)
  local record = M.find(id)
  local status = M.status(record)
  if status ~= "running" then fail("cannot exec in a container that is %s", status) end
  local box = try("cannot exec in " .. id, container.attach {
    id = record.lbox_id, pid = record.pid, pid_start = record.pid_start, status = "running",
    env = opts.replace_env and {} or record.env, workdir = record.workdir, user = record.user,
    capabilities = record.capabilities, no_new_privileges = record.no_new_privileges, ulimits = record.ulimits,
  })
  local program = fs.read_file(M.dir(id) .. "/seccomp.bpf")
  box.plan.seccomp_program = program ~= "" and program or nil
  local result = table.pack(pcall(box.exec, box, argv, { env = opts.env, workdir = opts.cwd or record.workdir,
                                                          tty = opts.tty, user = opts.user }))
  box:destroy()
  if not result[1] then error(result[2], 0) end
  return result[2]
end

--- Run container `opts.id` in the foreground (runc run): create and start
-- it, wait for it, remove it. @return its exit code
function M.run(opts)
  opts.foreground, opts.started = true, true
  local record, box = M.create(opts)
  local ok, why = pcall(run_hooks, record, record.hooks, "poststart")
  if not ok then
    box:destroy()
    pcall(M.delete, opts.id, true)
    error(why, 0)
  end
  local status = box:wait()
  pcall(M.delete, opts.id, true)
  return status.exit_code
end


return M

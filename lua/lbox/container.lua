--- A container: a spec (plain data) checked, and what it takes from the
-- host planned, before anything exists (lbox.spec); then started by two
-- ordered lists of named steps, one on each side of the handoff, each start
-- step pushing what undoes it (lbox.undo). Read `start_steps` here and
-- `steps` in lbox.inside top to bottom to know what happens when.
local capabilities = require "lbox.capabilities"
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local inside = require "lbox.inside"
local network = require "lbox.lazy" "lbox.network"
local rootfs = require "lbox.rootfs"
local spec_check = require "lbox.spec"
local state = require "lbox.state"
local terminal = require "lbox.terminal"
local users = require "lbox.users"
local undo = require "lbox.undo"
local userns = require "lbox.userns"

local M = {}

local try = errors.try

-- The namespaces, signals, capabilities and init steps live with what
-- runs inside the container.
M.NAMESPACE_FLAGS = inside.NAMESPACE_FLAGS
M.FORWARDED_SIGNALS = inside.FORWARDED_SIGNALS
M.init_steps = inside.steps
local WATCHED_SIGNALS = inside.WATCHED_SIGNALS
-- Signals that end a wait with the error "interrupted" instead of going to
-- the container: the REPL's Ctrl-C (lbox.repl).
M.INTERRUPTING_SIGNALS = {}
local READ_SIZE = inside.READ_SIZE
local run_init = inside.run

local Container = {}
Container.__index = Container

-- Signals stay blocked while any container of this process is running.
local running_count = 0
-- Containers started and not yet destroyed, so that lbox's exit ends them.
local live = {}

-- While containers run or commands are exec'd, lbox reads the watched
-- signals from a signalfd instead of dying of them.
local function hold_signals()
  if running_count == 0 then
    try("cannot ignore SIGPIPE", core.signal({ core.SIGPIPE }, "ignore"))
    try("cannot block signals", core.sigmask("block", WATCHED_SIGNALS))
  end
  running_count = running_count + 1
end

local function release_signals()
  running_count = running_count - 1
  if running_count == 0 then
    core.sigmask("unblock", WATCHED_SIGNALS)
    core.signal({ core.SIGPIPE }, "default")
  end
end

-- docker's exit code for a process that ended `how` ("exited", "killed") with `code`.
local function exit_code(how, code)
  return how == "exited" and code or errors.codes.signal_base + code
end

-- For supervise: has child `pid` ended? Its { how, code } go into `status`.
local function child_ended(pid, status)
  return function()
    local reaped, how, code = core.waitpid(pid, "nohang")
    if reaped ~= pid or how == "stopped" then return false end
    status.how, status.code = how, code
    return true
  end
end

-- What lbox does to start a container, in order, once lbox.spec has
-- checked the spec and planned what it takes from the host (`c.plan`). Each
-- step gets the container and pushes, on `c.undo`, what gives back each
-- thing it takes; `destroy` runs those in reverse, on every way out.
M.start_steps = {
  { "block_signals", function(c)
    -- first: a signal sent to lbox during the setup waits, and reaches the
    -- container, instead of killing lbox between two steps
    hold_signals()
    c.undo:push("unblock signals", release_signals)
  end },
  { "directory", function(c)
    -- the checks that need the store lock (a free name, the image still
    -- there) come first: they fail before any cgroup exists
    rootfs.claim(c.id, c.spec, c.plan, c.undo)
    c.has_directory = true
  end },
  { "id_range", function(c)
    -- a user namespace's maps: with auto, a range of lbox's taken (lbox.userns)
    if c.spec.userns then c.spec.userns.maps = userns.take(c.id, c.spec.userns) end
  end },
  { "rootfs", function(c)
    -- in the directory, removed with it
    c.spec.root = rootfs.prepare(c.id, c.spec, c.plan)
  end },
  { "network", function(c)
    -- before the clone, so that the init has its address through the fork:
    -- a lease on the network planned (lbox.network), the /etc/hosts of its
    -- containers, the rules of its ports; its undo gives them back
    if c.spec.network then c.spec.network_config = network.attach(c, c.undo) end
  end },
  { "cgroup", function(c)
    -- the limits' writes, and the device rules (lbox.devices) when planned
    c.cgroup = cgroups.create(c.id, c.plan.cgroup_writes, c.spec.accounting, c.plan.device_plan)
    if c.cgroup then
      c.undo:push("remove the cgroup", function()
        local ok, msg = c.cgroup:remove()
        if ok then c.cgroup = nil end
        return ok, msg
      end)
    end
    c.spec.cgroup_paths = c.cgroup and c.cgroup:controller_paths()
  end },
  { "pipes", function(c)
    c.undo:push("close the pipes", function() c:close_fds("sync_read", "sync_write", "error_read", "error_write") end)
    c.sync_read, c.sync_write = try("cannot create a pipe", core.pipe())
    c.error_read, c.error_write = try("cannot create a pipe", core.pipe())
  end },
  { "terminal", function(c)
    if not c.spec.tty then return end
    c.undo:push("close the terminal", function() c:close_fds("pty_master", "pty_slave") end)
    c.pty_master, c.pty_slave, c.console = try("cannot allocate a pseudo-terminal", core.openpty())
    if core.isatty(0) then
      terminal.copy_size(0, c.pty_master)
      if c.spec.stdin then
        local saved = terminal.make_raw(0)
        c.undo:push("restore the terminal", terminal.restore, 0, saved)
      end
    end
  end },
  { "idmapped_root", function(c)
    -- in a user namespace the init can attach its root, not make it: made
    -- here, its files owned by the container's root; the terminal too
    local maps = c.spec.userns and c.spec.userns.maps
    if not maps then return end
    c.id_shift = userns.prepare_root(rootfs.container_dir(c.id), c.spec.root, c.plan.lower, maps, c.plan.nodev, c.undo)
    if c.pty_slave then userns.give_terminal(c.pty_slave, maps, inside.TTY_GID) end
  end },
  { "join", function(c)
    c.undo:push("close the joined namespaces", function() c:close_joined() end)
    c.join_fds = {}
    for name, pid in pairs(c.spec.join) do
      -- a process's, or a namespace by path (one bind-mounted, say)
      local path = type(pid) == "string" and pid or "/proc/" .. pid .. "/ns/" .. name
      c.join_fds[name] = try("cannot open the " .. name .. " namespace " .. path, core.open(path))
    end
  end },
  { "clone", function(c)
    local flags = 0
    for name in pairs(c.spec.namespaces) do flags = flags | (M.NAMESPACE_FLAGS[name] or 0) end
    -- the others are then its: its root may use them (id_maps maps it)
    if c.spec.userns then flags = flags | core.CLONE_NEWUSER end
    -- on cgroup v2 the child is born in its cgroup (clone3); elsewhere, or
    -- on kernels before 5.7, join_cgroup moves it there
    local cgroup_dir = c.cgroup and c.cgroup:unified_path()
    local cgroup_fd = cgroup_dir and core.open(cgroup_dir, "directory")
    -- a pid namespace is joined for children only: lbox enters it for the
    -- clone and goes back to its own
    local own_pid_ns = c.join_fds.pid and try("cannot open lbox's pid namespace", core.open("/proc/self/ns/pid"))
    if own_pid_ns then try("cannot join the pid namespace", core.setns(c.join_fds.pid, core.CLONE_NEWPID)) end
    local pid, msg = cgroup_fd and core.clone(flags, cgroup_fd)
    if cgroup_fd then core.close(cgroup_fd) end
    c.born_in_cgroup = pid ~= nil
    if not pid then pid, msg = core.clone(flags) end
    c.pid = pid
    if c.pid == 0 then
      core.close(c.sync_write)
      -- the spec came with the fork: the child has it already
      run_init(c.init_steps, { sync_fd = c.sync_read, error_fd = c.error_write, console = c.console,
                               spec = c.spec, plan = c.plan, payload = c.payload, join_fds = c.join_fds })
    end
    if own_pid_ns then
      core.setns(own_pid_ns, core.CLONE_NEWPID)
      core.close(own_pid_ns)
    end
    c:close_joined()
    if not c.pid then errors.raise("cannot create the container process: " .. tostring(msg)) end
    c.undo:push("end the container's process", function()
      if c.status then return true end
      -- a frozen process (lbox pause) takes no signal, on v1 not even SIGKILL
      if c.cgroup and c.cgroup:frozen() then c.cgroup:freeze(false) end
      if not (c.cgroup and c.cgroup:kill()) then core.kill(c.pid, core.SIGKILL) end
      c:reap()
      return true
    end)
    c:close_fds("sync_read", "error_write", "pty_slave")
  end },
  { "id_maps", function(c)
    -- before release_child: the init goes on as its namespace's root
    if not c.spec.userns then return end
    userns.release_root(c.spec.root)
    try("cannot map the container's ids", userns.write_maps(c.pid, c.spec.userns.maps))
  end },
  { "join_cgroup", function(c)
    if c.born_in_cgroup then
      c.cgroup:unlock()
    elseif c.cgroup then
      try("cannot move the container into its cgroup", c.cgroup:attach(c.pid))
    end
  end },
  { "veth", function(c)
    -- its inner end, eth0, made in the namespace of the init, which waits
    -- for release_child; it goes with that namespace when the process ends
    if c.spec.network then network.link(c, c.undo) end
  end },
  { "release_child", function(c)
    -- sync 1: the child is in its cgroup (and on its network) and may go on
    try("cannot release the container's init", core.write(c.sync_write, inside.GO))
    c:close_fds("sync_write")
  end },
  { "record", function(c)
    -- while the init mounts the root: the pid with its start time, which
    -- kill, stop, rm and exec check (lbox.state.open_process)
    if c.has_directory then
      state.update(c.id, { pid = c.pid, pid_start = state.process_start(c.pid), status = "running", started = os.time() })
    end
  end },
  { "await_exec", function(c)
    -- sync 2: the error pipe is close-on-exec: end of file without a word means exec worked
    local report = inside.read_report(c.error_read)
    c:close_fds("error_read")
    if report then
      c:reap()
      errors.raise(report.message, report.code)
    end
  end },
}

--- Make a container from a spec table, checked against the host (its
-- image, its limits' controllers); nothing is made there yet, but the
-- built-in image on first use. Raises a user error naming the first thing
-- wrong with the spec. @see lua/API.md for the fields
--- Raise the user error of a caller who is not root: before anything
-- reads or makes the built-in image (the plan does, on first use).
function M.check_root()
  if core.geteuid() ~= 0 then
    errors.raise("lbox needs root to create namespaces and cgroups (run it with sudo)")
  end
end

function M.new(spec, labels)
  M.check_root()
  local self = setmetatable({ spec = spec_check.normalize(spec, labels) }, Container)
  -- everything knowable before a privileged act, checked now, in one place
  self.plan = spec_check.plan(self.spec, labels)
  self.undo = undo.new()
  self.id = self.spec.id
  self.state = "created"
  -- the normalized spec names a Lua command only: the init runs the
  -- function itself, which it has from the fork
  if type(spec.command) == "function" then self.payload = spec.command end
  self.start_steps = table.move(M.start_steps, 1, #M.start_steps, 1, {})
  self.init_steps = table.move(M.init_steps, 1, #M.init_steps, 1, {})
  return self
end

-- Insert step { name, fn } next to the step called `anchor`, in whichever
-- of this container's two lists has it.
local function insert_step(self, anchor, offset, name, fn)
  if self.state ~= "created" then error("steps can only change before start", 3) end
  if type(name) ~= "string" or type(fn) ~= "function" then
    error("a step needs a name and a function", 3)
  end
  for _, steps in ipairs { self.start_steps, self.init_steps } do
    for i, step in ipairs(steps) do
      if step[1] == anchor then
        table.insert(steps, i + offset, { name, fn })
        return self
      end
    end
  end
  error(string.format("no step %q (see lbox.start_steps and lbox.init_steps)", tostring(anchor)), 3)
end

--- Run `fn(ctx)` just before the step called `anchor`. Start steps get
-- the container, init steps (in the container, before exec) the init
-- context { spec, console, payload }. @return self
function Container:before(anchor, name, fn)
  return insert_step(self, anchor, 0, name, fn)
end

--- Run `fn(ctx)` just after the step called `anchor`. @see before
function Container:after(anchor, name, fn)
  return insert_step(self, anchor, 1, name, fn)
end

--- Run `fn(ctx)` in place of the step called `name` (which keeps its
-- name and place; a function that does nothing drops it). @return self
function Container:replace(name, fn)
  if self.state ~= "created" then error("steps can only change before start", 2) end
  for _, steps in ipairs { self.start_steps, self.init_steps } do
    for i, step in ipairs(steps) do
      if step[1] == name then
        -- a new entry: the default lists' entries are shared by every container
        steps[i] = { name, fn }
        return self
      end
    end
  end
  error(string.format("no step %q (see lbox.start_steps and lbox.init_steps)", tostring(name)), 2)
end

--- The names of this container's steps, in order: start steps, then init steps.
function Container:steps()
  local names = {}
  for _, steps in ipairs { self.start_steps, self.init_steps } do
    for _, step in ipairs(steps) do names[#names + 1] = step[1] end
  end
  return names
end

--- Start the container: its command runs when this returns.
function Container:start()
  assert(self.state == "created", "container already started")
  self.state = "starting"
  live[self] = true
  local ok, err = pcall(function()
    for _, step in ipairs(self.start_steps) do step[2](self) end
  end)
  if not ok then
    -- the reason it did not start matters more than a failed cleanup's
    self:destroy()
    error(err, 0)
  end
  self.state = "running"
  return self
end

function Container:close_joined()
  for _, fd in pairs(self.join_fds or {}) do core.close(fd) end
  self.join_fds = {}
end

function Container:close_fds(...)
  for _, field in ipairs { ... } do
    if self[field] then
      core.close(self[field])
      self[field] = nil
    end
  end
end

-- Collect the exit status of PID 1, once.
function Container:reap(nohang)
  if self.status or not self.pid or self.pid == 0 then return self.status end
  local pid, how, code = core.waitpid(self.pid, nohang and "nohang" or "block")
  if pid == self.pid and how ~= "stopped" then
    self.status = { how = how, code = code, exit_code = exit_code(how, code) }
    if self.cgroup then self.status.oom = self.cgroup:oom_killed() end
    self.state = "exited"
    -- a container that is not kept is removed next: no one would read it
    if self.has_directory and self.spec.keep then
      state.update(self.id, { status = "exited", exit_code = self.status.exit_code, oom = self.status.oom,
                              finished = os.time() })
    end
  end
  return self.status
end

--- Send signal `sig` (a number) to the container's PID 1.
function Container:kill(sig)
  if self.state ~= "running" then return nil, "container is not running" end
  if self.pidfd then return core.pidfd_send_signal(self.pidfd, sig or core.SIGTERM) end
  return core.kill(self.pid, sig or core.SIGTERM)
end

local function relay(from, to)
  local data = core.read(from, READ_SIZE)
  if not data or data == "" then return false end
  return core.write(to, data) ~= nil
end

-- Until `has_ended()` says so: pass lbox's signals on to `pid`, the window
-- size of lbox's terminal on to `master`, and what is typed (with `stdin`)
-- and printed between lbox's terminal and `master`. Signals are held.
local function supervise(pid, has_ended, master, stdin)
  -- held already, unless a REPL opened one for its evaluation
  try("cannot block signals", core.sigmask("block", WATCHED_SIGNALS))
  local sigfd = try("cannot watch signals", core.signalfd(WATCHED_SIGNALS))
  local watched = { sigfd }
  if master then
    watched[#watched + 1] = master
    if stdin then watched[#watched + 1] = 0 end
  end
  while not has_ended() do
    local ready = core.poll(watched, -1) or {}
    if ready[sigfd] then
      for sig in function() return core.read_signal(sigfd) end do
        if sig == core.SIGWINCH then
          if master and core.isatty(0) then terminal.copy_size(0, master) end
        elseif M.INTERRUPTING_SIGNALS[sig] then
          core.close(sigfd)
          error("interrupted", 0)
        elseif sig ~= core.SIGCHLD and sig ~= core.SIGPIPE then
          core.kill(pid, sig)
        end
      end
    end
    for i = #watched, 2, -1 do
      local fd = watched[i]
      if ready[fd] and not relay(fd, fd == 0 and master or 1) then table.remove(watched, i) end
    end
  end
  -- what was written just before the end
  while master and (core.poll({ master }, 0) or {})[master] and relay(master, 1) do end
  core.close(sigfd)
end

--- Run `argv` inside the running container: in every one of its
-- namespaces, PID and mount included, and in its cgroup, with its
-- environment plus `opts.env` (a name -> value map), in `opts.workdir`, as
-- `opts.user` ("USER[:GROUP]"; default: the container's user).
-- Output goes where lbox's goes; with `opts.tty`, through a pseudo-terminal
-- of its own, relayed to lbox's.
-- @return status { exit_code, how, code } | nil, message when not running
function Container:exec(argv, opts)
  opts = opts or {}
  if self.state ~= "running" then return nil, "container is not running" end
  if type(argv) ~= "table" or #argv == 0 then error("exec needs a command list", 2) end
  for i, word in ipairs(argv) do
    if type(word) ~= "string" then error(string.format("exec: item %d of the command is not a string", i), 2) end
  end
  local user = self.spec.user
  if opts.user then
    local name, group = users.parse(opts.user)
    if not name then errors.raise("user: " .. group) end -- group is then the reason
    user = { name = name, group = group }
  end
  local env = {}
  for name, value in pairs(self.spec.env) do env[name] = value end
  for name, value in pairs(opts.env or {}) do env[name] = value end
  -- what this takes is given back on every way out, in reverse
  local taken <close> = undo.new()
  -- a pidfd names PID 1 even if its number were reused; an attached
  -- container's was checked against its recorded start time
  local process = self.pidfd
  if not process then
    process = try("cannot find the container's process", core.pidfd_open(self.pid))
    taken:push("close the process descriptor", core.close, process)
  end
  local error_read, error_write = try("cannot create a pipe", core.pipe())
  taken:push("close the pipe", function()
    core.close(error_read)
    if error_write then core.close(error_write) end
  end)
  local master, slave
  if opts.tty then
    master, slave = try("cannot allocate a pseudo-terminal", core.openpty())
    taken:push("close the terminal", function()
      core.close(master)
      if slave then core.close(slave) end
    end)
    if core.isatty(0) then terminal.copy_size(0, master) end
    -- in a user namespace, its root's (so that the user step may give it on):
    -- the maps recorded, or this process's container's
    local maps = self.spec.userns and (self.spec.userns.maps or self.spec.userns)
    if maps then userns.give_terminal(slave, maps, inside.TTY_GID) end
  end
  hold_signals()
  taken:push("unblock signals", release_signals)
  -- the command's side: lbox.inside.exec_steps
  local ctx = { error_fd = error_write, cgroup = self.cgroup, process = process, terminal = slave,
                workdir = opts.workdir or self.spec.workdir or "/",
                -- confined as the container's init: its capabilities, no_new_privs and seccomp program
                spec = { user = user, env = env, command = argv, capabilities = self.spec.capabilities,
                         no_new_privileges = self.spec.no_new_privileges, userns = self.spec.userns },
                plan = { seccomp_program = self.plan.seccomp_program, ulimits = self.plan.ulimits },
                supervise = function(child)
                  local status = {}
                  supervise(child, child_ended(child, status))
                  return exit_code(status.how, status.code)
                end }
  local pid, msg = core.clone(0)
  if pid == 0 then
    core.close(error_read)
    run_init(inside.exec_steps, ctx)
  end
  core.close(error_write)
  error_write = nil
  if slave then
    core.close(slave)
    slave = nil
  end
  if not pid then errors.raise("cannot create the process: " .. tostring(msg)) end
  local status = {}
  local report = inside.read_report(error_read)
  -- the user's terminal is raw while it is the command's
  if master and core.isatty(0) then taken:push("restore the terminal", terminal.restore, 0, terminal.make_raw(0)) end
  supervise(pid, child_ended(pid, status), master, true)
  if report then errors.raise(report.message, report.code) end
  status.exit_code = exit_code(status.how, status.code)
  return status
end

--- What the container uses now, from its cgroup: { memory = bytes,
-- pids = count, cpu_usec = microseconds } for the limits it was given
-- (a container without limits has no cgroup, and gets {}).
function Container:stats()
  return self.cgroup and self.cgroup:stats() or {}
end

--- Wait for the container to end while passing on signals and, with a
-- terminal, copying between it and the user's. Tears the container down.
-- @return status { exit_code, how = "exited"|"killed", code, oom }, and
--   what could not be given back (see destroy) | nil
function Container:wait()
  if self.state ~= "running" then return self.status end
  supervise(self.pid, function() return self:reap(true) end, self.pty_master, self.spec.stdin)
  local _, cleanup_failure = self:destroy()
  return self.status, cleanup_failure
end

--- Release everything the container holds, in the reverse order of its
-- taking (c.undo): kills PID 1 if it still runs, restores the terminal,
-- removes the cgroup and, unless kept, the directory. Every release is
-- tried even when one fails. Safe to call more than once.
-- @return true | nil, message naming the first release that failed
function Container:destroy()
  local ok, msg = self.undo:unwind()
  self.state = self.status and "exited" or "destroyed"
  live[self] = nil
  return ok, msg
end

Container.__close = Container.destroy

--- Let go of a started container without ending it: it outlives this
-- process (lbox oci create), which closes what it holds of it and forgets
-- what its start took. Whoever ends the container gives those back
-- (lbox oci delete: the process, the cgroup).
function Container:release()
  self:close_fds("sync_read", "sync_write", "error_read", "error_write", "pty_master", "pty_slave")
  if self.cgroup then self.cgroup:unlock() end
  self.undo = undo.new()
  self.state = "released"
  live[self] = nil
  return self
end

--- A container started by another lbox (a detached one's monitor), from
-- its recorded state, for exec, stats and kill: its PID 1 held by a pidfd,
-- checked to be the recorded process. It is not this process's to end:
-- destroy only closes that descriptor.
-- @return container | nil, message when it does not run
function M.attach(recorded)
  local process, why = state.open_process(recorded)
  if not process then return nil, why end
  local self = setmetatable({ id = recorded.id, pid = recorded.pid, pidfd = process, state = "running", attached = true,
    spec = { env = recorded.env or {}, workdir = recorded.workdir, user = recorded.user,
             -- recorded before capabilities were: docker's default set
             capabilities = recorded.capabilities or capabilities.DEFAULT,
             no_new_privileges = recorded.no_new_privileges, userns = recorded.userns },
    plan = { seccomp_program = state.seccomp_program(recorded.id), ulimits = recorded.ulimits or {} } }, Container)
  self.cgroup = cgroups.open(recorded.id)
  -- all this process holds of it, let go of by destroy (or <close>)
  self.undo = undo.new()
  self.undo:push("close the process descriptor", core.close, process)
  return self
end

--- Destroy every container this process started and has not destroyed.
function M.destroy_all()
  for c in pairs(live) do c:destroy() end
end

function Container:__tostring()
  return string.format("container %s (%s)", self.id:sub(1, 12), self.state)
end

return M

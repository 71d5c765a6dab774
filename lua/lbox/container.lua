--- A container: a spec (plain data) checked before any process exists, then
-- started by two ordered lists of named steps, one on each side of the
-- handoff. Read `start_steps` here and `steps` in lbox.inside top to bottom
-- to know what happens when.
local cgroups = require "lbox.cgroups"
local core = require "lbox.core"
local errors = require "lbox.errors"
local exec = require "lbox.exec"
local inside = require "lbox.inside"
local rootfs = require "lbox.rootfs"
local spec_check = require "lbox.spec"
local state = require "lbox.state"
local terminal = require "lbox.terminal"
local users = require "lbox.users"
local wire = require "lbox.wire"

local M = {}

local try = errors.try

-- The namespaces, signals, capabilities and init steps live with what
-- runs inside the container.
M.NAMESPACE_FLAGS = inside.NAMESPACE_FLAGS
M.FORWARDED_SIGNALS = inside.FORWARDED_SIGNALS
M.CAPABILITIES = inside.CAPABILITIES
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

-- What lbox does to start a container, in order. Each step gets the
-- container; resources taken are released by `destroy`, on every path.
M.start_steps = {
  { "cgroup", function(c)
    c.cgroup = cgroups.create(c.id, c.spec.limits, c.spec.accounting)
    c.spec.cgroup_paths = c.cgroup and c.cgroup:controller_paths()
  end },
  { "rootfs", function(c)
    c.has_directory = true
    c.spec.root, c.directory_lock = rootfs.prepare(c.id, c.spec)
  end },
  { "pipes", function(c)
    c.sync_read, c.sync_write = try("cannot create a pipe", core.pipe())
    c.error_read, c.error_write = try("cannot create a pipe", core.pipe())
  end },
  { "terminal", function(c)
    if not c.spec.tty then return end
    c.pty_master, c.pty_slave, c.console = try("cannot allocate a pseudo-terminal", core.openpty())
    if core.isatty(0) then
      terminal.copy_size(0, c.pty_master)
      if c.spec.stdin then c.saved_terminal = terminal.make_raw(0) end
    end
  end },
  { "block_signals", function(c)
    hold_signals()
    c.holds_signals = true
  end },
  { "join", function(c)
    c.join_fds = {}
    for name, pid in pairs(c.spec.join) do
      c.join_fds[name] = try("cannot open the " .. name .. " namespace of process " .. pid,
        core.open("/proc/" .. pid .. "/ns/" .. name))
    end
  end },
  { "clone", function(c)
    local flags = 0
    for name in pairs(c.spec.namespaces) do flags = flags | (M.NAMESPACE_FLAGS[name] or 0) end
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
      run_init(c.init_steps, { sync_fd = c.sync_read, error_fd = c.error_write, console = c.console,
                               payload = c.payload, join_fds = c.join_fds })
    end
    if own_pid_ns then
      core.setns(own_pid_ns, core.CLONE_NEWPID)
      core.close(own_pid_ns)
    end
    c:close_joined()
    if not c.pid then errors.raise("cannot create the container process: " .. tostring(msg)) end
    c:close_fds("sync_read", "error_write", "pty_slave")
    state.update(c.id, { pid = c.pid, status = "running", started = os.time() })
  end },
  { "join_cgroup", function(c)
    if c.born_in_cgroup then
      c.cgroup:unlock()
    elseif c.cgroup then
      try("cannot move the container into its cgroup", c.cgroup:attach(c.pid))
    end
  end },
  { "send_spec", function(c)
    -- the child reads while we write: any size fits
    try("cannot send the container spec", core.write(c.sync_write, wire.encode(c.spec)))
    c:close_fds("sync_write")
  end },
  { "await_exec", function(c)
    -- the error pipe is close-on-exec: end of file without a word means exec worked
    local report = inside.read_report(c.error_read)
    c:close_fds("error_read")
    if report then
      c:reap()
      errors.raise(report.message, report.code)
    end
  end },
}

--- Make a container from a spec table; nothing happens on the host yet.
-- Raises a user error naming the first thing wrong with the spec.
-- @see lbox.spec for the fields
function M.new(spec, labels)
  local self = setmetatable({ spec = spec_check.normalize(spec, labels) }, Container)
  self.id = self.spec.id
  self.state = "created"
  -- functions do not travel over the pipe: the forked init has its own copy
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
  if core.geteuid() ~= 0 then
    errors.raise("lbox needs root to create namespaces and cgroups (run it with sudo)")
  end
  self.state = "starting"
  live[self] = true
  local ok, err = pcall(function()
    for _, step in ipairs(self.start_steps) do step[2](self) end
  end)
  if not ok then
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

-- The namespaces `exec` joins, in order: the cgroup namespace after the
-- cgroup itself, the mount namespace last (it changes / and the cwd).
local JOINED_NAMESPACES = {
  { "cgroup", core.CLONE_NEWCGROUP }, { "ipc", core.CLONE_NEWIPC }, { "uts", core.CLONE_NEWUTS },
  { "net", core.CLONE_NEWNET }, { "pid", core.CLONE_NEWPID }, { "mnt", core.CLONE_NEWNS },
}

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
    if not name then errors.raise("--user " .. group) end -- group is then the reason
    user = { name = name, group = group }
  end
  local env = {}
  for name, value in pairs(self.spec.env) do env[name] = value end
  for name, value in pairs(opts.env or {}) do env[name] = value end
  local error_read, error_write = try("cannot create a pipe", core.pipe())
  local master, slave
  local target = self.pid
  local steps = {
    { "join_cgroup", function()
      if self.cgroup then try("cannot join the container's cgroup", self.cgroup:attach(core.getpid())) end
    end },
    { "join_namespaces", function()
      for _, ns in ipairs(JOINED_NAMESPACES) do
        local fd = core.open("/proc/" .. target .. "/ns/" .. ns[1])
        if fd then
          -- a namespace the container shares with lbox is joined as well: no change
          try("cannot join the container's " .. ns[1] .. " namespace", core.setns(fd, ns[2]))
          core.close(fd)
        end
      end
    end },
    { "enter_pid_namespace", function()
      -- setns(pid) places children only: the command runs in a child, and
      -- this process passes lbox's signals on to it until it ends
      local child = try("cannot create the process", core.clone(0))
      if child ~= 0 then
        core.close(error_write)
        local status = {}
        supervise(child, child_ended(child, status))
        core._exit(exit_code(status.how, status.code))
      end
    end },
    { "workdir", function()
      try("cannot enter the working directory", core.chdir(opts.workdir or self.spec.workdir or "/"))
    end },
    { "capabilities", function() try("cannot drop capabilities", core.limit_capabilities(M.CAPABILITIES)) end },
    { "signals", function() inside.reset_signals() end },
    { "terminal", function()
      -- a session of its own in any case: lbox's terminal stays out of reach
      try("cannot start a session", core.setsid())
      if slave then
        try("cannot take the terminal", core.set_controlling_tty(slave))
        for fd = 0, 2 do try("cannot attach the terminal", core.dup2(slave, fd)) end
      end
      try("cannot close lbox's descriptors", core.cloexec_from(3))
    end },
    { "user", function() inside.become_user(user, env) end },
    { "exec", function() exec.execvp(argv, env) end },
  }
  if opts.tty then
    master, slave = try("cannot allocate a pseudo-terminal", core.openpty())
    if core.isatty(0) then terminal.copy_size(0, master) end
  end
  hold_signals()
  local pid, msg = core.clone(0)
  if pid == 0 then
    core.close(error_read)
    run_init(steps, { error_fd = error_write })
  end
  core.close(error_write)
  if slave then core.close(slave) end
  local status, report = {}, nil
  if pid then
    report = inside.read_report(error_read)
    -- the user's terminal is raw while it is the command's
    local saved = master and core.isatty(0) and terminal.make_raw(0)
    supervise(pid, child_ended(pid, status), master, true)
    if saved then terminal.restore(0, saved) end
  end
  release_signals()
  core.close(error_read)
  if master then core.close(master) end
  if not pid then errors.raise("cannot create the process: " .. tostring(msg)) end
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
-- @return status { exit_code, how = "exited"|"killed", code, oom }
function Container:wait()
  if self.state ~= "running" then return self.status end
  supervise(self.pid, function() return self:reap(true) end, self.pty_master, self.spec.stdin)
  self:destroy()
  return self.status
end

--- Release everything the container holds: kills PID 1 if it still runs,
-- restores the terminal, removes the cgroup. Safe to call more than once.
-- @return true | nil, message (the cgroup could not be removed)
function Container:destroy()
  if self.pid and self.pid > 0 and not self.status then
    if not (self.cgroup and self.cgroup:kill()) then core.kill(self.pid, core.SIGKILL) end
    self:reap()
  end
  self:close_fds("sync_read", "sync_write", "error_read", "error_write", "pty_master", "pty_slave")
  self:close_joined()
  if self.saved_terminal then
    terminal.restore(0, self.saved_terminal)
    self.saved_terminal = nil
  end
  if self.holds_signals then
    self.holds_signals = false
    release_signals()
  end
  self.state = self.status and "exited" or "destroyed"
  live[self] = nil
  if self.cgroup then
    local ok, msg = self.cgroup:remove()
    if not ok then return nil, msg end
    self.cgroup = nil
  end
  if self.has_directory then
    if not self.spec.keep then
      local ok, msg = rootfs.remove(self.id)
      if not ok then return nil, msg end
    end
    self.has_directory = false
    self:close_fds("directory_lock")
  end
  return true
end

Container.__close = Container.destroy

--- A container started by another lbox (a detached one's monitor), from
-- its recorded state, for exec, stats and kill. It is not this process's to
-- destroy. @return container | nil, message when it does not run
function M.attach(recorded)
  if recorded.status ~= "running" or not recorded.pid then
    return nil, string.format("container %s is not running", recorded.id:sub(1, 12))
  end
  local self = setmetatable({ id = recorded.id, pid = recorded.pid, state = "running", attached = true,
    spec = { env = recorded.env or {}, workdir = recorded.workdir, user = recorded.user } }, Container)
  self.cgroup = cgroups.open(recorded.id)
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

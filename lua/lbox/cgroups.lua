--- Container cgroups: which files each limit becomes on cgroup v1 and v2,
-- lbox's own parent group, and the sweep of groups left by dead containers.
-- Every group lbox makes is `lbox/<container id>` in each hierarchy it uses;
-- nothing outside `lbox/` is ever written.
local core = require "lbox.core"
local devices = require "lbox.devices"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local lfs = require "lfs"
local limits_table = require "lbox.limits"

local M = {}

-- LBOX_CGROUP_PARENT lets separate lbox installations (or test runs) keep
-- their groups, and their sweeps, apart.
M.parent = os.getenv("LBOX_CGROUP_PARENT") or "lbox"
--- The lock a start holds (shared) while its group has no process yet, and a
-- sweep (exclusive) while it removes groups: one per parent, since a sweep
-- touches only its parent's groups (one lock for all made any other
-- installation's start, or another spec run's, skip the sweep).
function M.lock_path(parent)
  return "/run/lbox/cgroups-" .. parent .. ".lock"
end
-- controllers whose groups a sweep looks at
local SWEPT_CONTROLLERS = { "memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer" }
local CFS_PERIOD = 100000

local read_file, exists = fs.read_file, fs.exists

-- Is `word` one of the space-separated words of `text`?
local function has_word(text, word)
  return (" " .. (text or "") .. " "):find("%s" .. word .. "%s") ~= nil
end

local initialized = false

--- Is /sys/fs/cgroup a cgroup v2 hierarchy (a pure v2 host)?
function M.unified()
  return exists("/sys/fs/cgroup/cgroup.controllers")
end

-- libcgroup finds no usable hierarchy: say what is missing and what to do.
local function unusable_host(msg)
  local delegated = read_file("/sys/fs/cgroup/cgroup.controllers")
  if delegated and not delegated:find("%S") then
    errors.raise("no cgroup controller is delegated to lbox: /sys/fs/cgroup/cgroup.controllers is empty; "
      .. "enable controllers in the parent's cgroup.subtree_control, or run lbox from a cgroup that has them")
  end
  errors.raise("cannot use the host's cgroups (" .. msg .. "): "
    .. "mount cgroup v2 on /sys/fs/cgroup, or the v1 controllers under it")
end

--- Where `controller` is mounted and which cgroup version serves it.
-- @return mount point, 1 or 2 | nil when the controller is not available
function M.hierarchy(controller)
  if not initialized then
    local ok, msg = core.cgroup_init()
    if not ok then unusable_host(msg) end
    initialized = true
  end
  local mount = core.cgroup_mount_point(controller)
  if not mount then return nil end
  if exists(mount .. "/cgroup.controllers") then
    -- on v2 a controller is usable only if the root delegates it
    if not has_word(read_file(mount .. "/cgroup.controllers"), controller) then return nil end
    return mount, 2
  end
  return mount, 1
end

-- The hierarchy of `controller`, mount and version | nil, why it cannot be used.
local function usable_hierarchy(controller)
  local mount, version = M.hierarchy(controller)
  if not mount then
    return nil, string.format("needs the cgroup controller %q, which this host does not provide: "
      .. "mount it (v1) or enable it in /sys/fs/cgroup/cgroup.subtree_control (v2)", controller)
  end
  -- v2: lbox's parent sits under the root, so the root must pass the
  -- controller down; lbox never changes a cgroup it does not own
  if version == 2 and not has_word(read_file(mount .. "/cgroup.subtree_control"), controller) then
    return nil, string.format("needs the cgroup controller %q, which %s/cgroup.subtree_control does not "
      .. "enable for child groups: enable it there (echo +%s > %s/cgroup.subtree_control)",
      controller, mount, controller, mount)
  end
  return mount, version
end

--- docker's --cpu-shares (2..262144) as cgroup v2's cpu.weight (1..10000),
-- the conversion crun and runc use.
M.shares_to_weight = limits_table.shares_to_weight

--- The writes a set of limits needs, in the order they must happen,
-- checked against this host's hierarchies. Reads only.
-- @param limits { memory, memory_swap, cpus, cpu_shares, cpuset_cpus,
--   cpuset_mems, pids } (numbers; cpuset_* as kernel list strings), checked
--   by lbox.spec
-- @return list of { controller, file, value } | nil, field, message when
--   the host cannot apply a limit (field as in the spec: "limits.memory")
function M.plan(limits)
  local writes = {}
  local function write(controller, file, value)
    writes[#writes + 1] = { controller, file, tostring(value) }
  end
  -- the hierarchy of `controller` for the limit `field`; raises why not, caught below
  local function hierarchy(controller, field)
    local mount, version = usable_hierarchy(controller)
    if not mount then error({ field = "limits." .. field, message = version }, 0) end
    return mount, version
  end
  local ok, err = pcall(function()
    if limits.memory then
      local mount, version = hierarchy("memory", "memory")
      local swap = limits.memory_swap
      local swap_file = version == 1 and "memory.memsw.limit_in_bytes" or "memory.swap.max"
      -- v2 kernels account swap unless booted with swapaccount=0; a failed
      -- write then says so
      local swap_supported = version == 2 or exists(mount .. "/" .. swap_file)
      if swap and not swap_supported then
        error({ field = "limits.memory_swap",
                message = "needs swap accounting, which this kernel has off: boot with swapaccount=1" }, 0)
      end
      -- like docker: without a swap limit, as much swap as memory
      if not swap and swap_supported then swap = 2 * limits.memory end
      if version == 1 then
        -- memory before memsw: the kernel refuses memsw below memory
        write("memory", "memory.limit_in_bytes", limits.memory)
        if swap then write("memory", swap_file, swap) end
      else
        write("memory", "memory.max", limits.memory)
        if swap then write("memory", swap_file, swap == -1 and "max" or swap - limits.memory) end
      end
    end
    if limits.cpus then
      local _, version = hierarchy("cpu", "cpus")
      local quota = math.max(1000, math.floor(limits.cpus * CFS_PERIOD + 0.5))
      if version == 1 then
        write("cpu", "cpu.cfs_period_us", CFS_PERIOD)
        write("cpu", "cpu.cfs_quota_us", quota)
      else
        write("cpu", "cpu.max", string.format("%d %d", quota, CFS_PERIOD))
      end
    end
    if limits.cpu_shares then
      local _, version = hierarchy("cpu", "cpu_shares")
      if version == 1 then
        write("cpu", "cpu.shares", limits.cpu_shares)
      else
        write("cpu", "cpu.weight", M.shares_to_weight(limits.cpu_shares))
      end
    end
    if limits.cpuset_cpus or limits.cpuset_mems then
      local mount, version = hierarchy("cpuset", limits.cpuset_cpus and "cpuset_cpus" or "cpuset_mems")
      local cpus, mems = limits.cpuset_cpus, limits.cpuset_mems
      if version == 1 then
        -- a v1 cpuset with an empty cpus or mems refuses tasks: fill both
        local function inherited(file)
          return (read_file(mount .. "/" .. file) or ""):match("^%s*(.-)%s*$")
        end
        cpus = cpus or inherited("cpuset.cpus")
        mems = mems or inherited("cpuset.mems")
      end
      if cpus then write("cpuset", "cpuset.cpus", cpus) end
      if mems then write("cpuset", "cpuset.mems", mems) end
    end
    if limits.pids then
      hierarchy("pids", "pids")
      write("pids", "pids.max", limits.pids == -1 and "max" or limits.pids)
    end
  end)
  if not ok then
    if type(err) ~= "table" then error(err, 0) end
    return nil, err.field, err.message
  end
  return writes
end

-- lbox's parent group, per hierarchy, made ready for children that use
-- `controller`: on v1 a cpuset parent needs cpus and mems of its own; on v2
-- the parent must pass the controller down (cgroup.subtree_control).
local function prepare_parent(controller)
  local mount, version = M.hierarchy(controller)
  local dir = mount .. "/" .. M.parent
  if version == 1 then
    if controller ~= "cpuset" then return end
    local current = read_file(dir .. "/cpuset.cpus")
    if current and current:match("%S") then return end
    local parent <close> = errors.try("cannot prepare lbox's cpuset parent", core.cgroup_new(M.parent))
    for _, file in ipairs { "cpuset.cpus", "cpuset.mems" } do
      errors.try("cannot prepare lbox's cpuset parent",
        parent:set("cpuset", file, (read_file(mount .. "/" .. file) or ""):match("^%s*(.-)%s*$")))
    end
    errors.try("cannot create lbox's cgroup parent", parent:create())
  else
    -- made by hand: libcgroup would also write the root's subtree_control
    if not exists(dir) then
      errors.try("cannot create lbox's cgroup parent " .. dir, lfs.mkdir(dir))
    end
    if has_word(read_file(dir .. "/cgroup.subtree_control"), controller) then return end
    local f, msg = io.open(dir .. "/cgroup.subtree_control", "w")
    local ok = f and f:write("+" .. controller)
    if f then ok, msg = f:close() end
    if not ok then
      errors.raise(string.format("cannot enable the %s controller for lbox's cgroups in %s: %s", controller, dir, msg))
    end
  end
end

local function is_container_id(name)
  return #name == 64 and not name:find("[^0-9a-f]")
end

-- Remove the groups of containers that are gone. Callers hold the lock
-- exclusively, so no group is between its creation and its first process.
local function sweep()
  local seen = {}
  for _, controller in ipairs(SWEPT_CONTROLLERS) do
    local mount = M.hierarchy(controller)
    local dir = mount and mount .. "/" .. M.parent
    if dir and not seen[dir] and exists(dir) then
      seen[dir] = true
      for name in lfs.dir(dir) do
        local procs = is_container_id(name) and read_file(dir .. "/" .. name .. "/cgroup.procs")
        if procs == "" then
          local group <close> = core.cgroup_new(M.parent .. "/" .. name)
          if group and group:add_controller(controller) then group:delete() end
        end
      end
    end
  end
end

local function lock_groups()
  if not M.parent:match("^[%w_.-]+$") or M.parent:match("^%.+$") then
    errors.raise("LBOX_CGROUP_PARENT must be one cgroup name (letters, digits, '_', '.', '-'), not '" .. M.parent .. "'")
  end
  lfs.mkdir("/run/lbox")
  local path = M.lock_path(M.parent)
  local fd = errors.try("cannot open " .. path, core.open(path, "create"))
  if core.flock(fd, "exclusive", "nowait") then
    sweep()
    core.flock(fd, "shared")
  else
    core.flock(fd, "shared")
  end
  return fd
end

local Group = {}
Group.__index = Group

-- Controllers an accounted container's group has even without limits, for
-- stats (v1 keeps CPU time in cpuacct).
-- (and on v1 the freezer, for lbox pause; v2 freezes any group)
local ACCOUNTED_CONTROLLERS = { "memory", "pids", "cpu", "cpuacct", "freezer" }

--- Where device rules `rules` (lbox.devices) would go on this host: v1's
-- devices controller, or on cgroup v2 an eBPF program on the group, which
-- then needs a controller to exist in. Reads only.
-- @return { rules, version, controller (v2: the group's controller if the
--   limits give it none) } | nil, message when the host has neither
function M.plan_devices(rules)
  local _, version = M.hierarchy("devices")
  if version == 1 then return { rules = rules, version = 1, controller = "devices" } end
  if M.unified() then
    for _, controller in ipairs { "pids", "memory", "cpu" } do
      if M.hierarchy(controller) then return { rules = rules, version = 2, controller = controller } end
    end
  end
  return nil, "device rules need the cgroup v1 devices controller or cgroup v2 with a controller "
    .. "delegated to lbox (pids, memory or cpu), which this host does not provide"
end

-- The group's device rules: written to devices.deny/allow (v1), or loaded
-- as a program and attached (v2).
local function apply_device_rules(group, rules, version)
  if version == 1 then
    local dir = M.hierarchy("devices") .. "/" .. group.name
    local lines = devices.v1_lines(rules)
    table.insert(lines, 1, "a")
    for i, line in ipairs(lines) do
      local file = dir .. (i == 1 and "/devices.deny" or "/devices.allow")
      local f, msg = io.open(file, "w")
      local ok = f and f:write(line)
      if f then ok, msg = f:close() end
      if not ok then errors.raise(string.format("cannot write %q to %s: %s", line, file, msg)) end
    end
  else
    local program = errors.try("cannot load the device rules as an eBPF program",
      core.bpf_device_program(devices.bpf_program(rules)))
    local dir_fd, msg = core.open(group:unified_path(), "directory")
    local ok
    if dir_fd then ok, msg = core.bpf_attach_device(program, dir_fd) end
    core.close(program)
    if dir_fd then core.close(dir_fd) end
    if not ok then errors.raise("cannot attach the device rules to the container's cgroup: " .. tostring(msg)) end
  end
end

--- Create the cgroup of container `id` and make `writes` (from `plan`);
-- with `accounting`, also in the controllers `stats` reads, limits or not;
-- with `device_plan` (from plan_devices), denying every device access its
-- rules do not allow.
-- @return group | nil when no cgroup is needed
function M.create(id, writes, accounting, device_plan)
  local controllers = {}
  for _, w in ipairs(writes) do controllers[#controllers + 1] = w[1] end
  if accounting then
    for _, controller in ipairs(ACCOUNTED_CONTROLLERS) do
      if M.hierarchy(controller) then controllers[#controllers + 1] = controller end
    end
  end
  if device_plan and (device_plan.version == 1 or #controllers == 0) then
    controllers[#controllers + 1] = device_plan.controller
  end
  if #controllers == 0 then return nil end
  local self = setmetatable({ name = M.parent .. "/" .. id, controllers = {} }, Group)
  self.lock_fd = lock_groups()
  local ok, err = pcall(function()
    self.handle = errors.try("cannot create cgroup " .. self.name, core.cgroup_new(self.name))
    for _, controller in ipairs(controllers) do
      if not self.controllers[controller] then
        self.controllers[controller] = true
        prepare_parent(controller)
        errors.try("cannot use controller " .. controller, self.handle:add_controller(controller))
      end
    end
    for _, w in ipairs(writes) do
      errors.try("cannot set " .. w[2], self.handle:set(w[1], w[2], w[3]))
    end
    local created, msg = self.handle:create()
    if not created then
      self:remove()
      -- libcgroup says only "operation not allowed": find the reason
      for _, path in ipairs(self:paths()) do
        local parent = path:match("^(.*)/[^/]+$")
        local _, why = core.access(parent, "write")
        if why then
          errors.raise(string.format("cannot create cgroups in %s (%s): lbox needs to write there; "
            .. "is the cgroup hierarchy mounted read-only?", parent, why:match(": (.*)$")))
        end
      end
      errors.raise(string.format("cannot create cgroup %s: %s", self.name, msg))
    end
    if device_plan then
      local applied, why = pcall(apply_device_rules, self, device_plan.rules, device_plan.version)
      if not applied then
        self:remove()
        error(why, 0)
      end
    end
  end)
  if not ok then
    self:unlock()
    error(err, 0)
  end
  return self
end

--- The existing group of container `id`, in whichever hierarchies lbox
-- made it | nil when it has none.
function M.open(id)
  local self = setmetatable({ name = M.parent .. "/" .. id, controllers = {} }, Group)
  for _, controller in ipairs(SWEPT_CONTROLLERS) do
    local mount = M.hierarchy(controller)
    if mount and exists(mount .. "/" .. self.name) then self.controllers[controller] = true end
  end
  if not next(self.controllers) then return nil end
  self.handle = errors.try("cannot open cgroup " .. self.name, core.cgroup_new(self.name))
  for controller in pairs(self.controllers) do self.handle:add_controller(controller) end
  return self
end

function Group:unlock()
  if self.lock_fd then
    core.close(self.lock_fd)
    self.lock_fd = nil
  end
end

--- Move process `pid` into the group.
-- @return true | nil, message
function Group:attach(pid)
  local ok, msg
  local unified = self:unified_path()
  if unified then
    -- one directory on v2; libcgroup 2.0.2 fails here with "not mounted"
    -- for a group opened from another process
    local f
    f, msg = io.open(unified .. "/cgroup.procs", "w")
    ok = f and f:write(tostring(pid))
    if f then ok, msg = f:close() end
  else
    ok, msg = self.handle:attach(pid)
  end
  self:unlock()
  return ok, msg
end

--- Paths of the group's directory, one per hierarchy.
function Group:paths()
  local paths, seen = {}, {}
  for controller in pairs(self.controllers) do
    local path = M.hierarchy(controller) .. "/" .. self.name
    if not seen[path] then
      seen[path] = true
      paths[#paths + 1] = path
    end
  end
  table.sort(paths)
  return paths
end

--- The group's directory in each of its controllers' hierarchies.
-- @return { controller = path }
function Group:controller_paths()
  local paths = {}
  for controller in pairs(self.controllers) do
    paths[controller] = M.hierarchy(controller) .. "/" .. self.name
  end
  return paths
end

--- The group's one directory when all its controllers are on cgroup v2
-- (a process can then be born in it), else nil.
function Group:unified_path()
  local paths = self:paths()
  if #paths == 1 and exists(paths[1] .. "/cgroup.controllers") then return paths[1] end
  return nil
end

--- Kill every process of the group at once, where the kernel can (v2,
-- Linux 5.14: cgroup.kill). @return true | nil when it cannot
function Group:kill()
  local path = self:unified_path()
  local f = path and io.open(path .. "/cgroup.kill", "w")
  if not f then return nil end
  local ok = f:write("1")
  f:close()
  return ok and true or nil
end

--- Current use of the group: { memory = bytes, pids = count, cpu_usec = µs }
-- for the controllers it has (v1 keeps CPU time in cpuacct, which lbox does
-- not join).
function Group:stats()
  local stats = {}
  local function number(controller, file, pattern)
    local mount = self.controllers[controller] and M.hierarchy(controller)
    local text = mount and read_file(mount .. "/" .. self.name .. "/" .. file)
    return text and tonumber(text:match(pattern or "^%s*(%d+)"))
  end
  local _, version = M.hierarchy("memory")
  stats.memory = number("memory", version == 2 and "memory.current" or "memory.usage_in_bytes")
  stats.pids = number("pids", "pids.current")
  stats.cpu_usec = number("cpu", "cpu.stat", "usage_usec (%d+)")
  local cpuacct_ns = number("cpuacct", "cpuacct.usage")
  if cpuacct_ns then stats.cpu_usec = cpuacct_ns // 1000 end
  return stats
end

local FREEZE_POLL_MS, FREEZE_TRIES = 10, 500

--- Freeze (`frozen` true) or thaw every process of the group, as docker's
-- pause: v2's cgroup.freeze, or v1's freezer controller; returns once the
-- kernel says it is done. @return true | nil, message
function Group:freeze(frozen)
  local unified = self:unified_path()
  local file, value, done, settled
  if unified then
    file, value = unified .. "/cgroup.freeze", frozen and "1" or "0"
    done = function() return (read_file(unified .. "/cgroup.events") or ""):match("frozen (%d)") == value end
  elseif self.controllers.freezer then
    local path = M.hierarchy("freezer") .. "/" .. self.name
    file, value = path .. "/freezer.state", frozen and "FROZEN" or "THAWED"
    done = function() return (read_file(path .. "/freezer.state") or ""):match("%u+") == value end
  else
    return nil, "it has no freezer: on cgroup v1 lbox freezes only containers run with -d"
  end
  for _ = 1, FREEZE_TRIES do
    -- v1 may stay FREEZING while a task is busy in the kernel: write again
    local f, msg = io.open(file, "w")
    if not f then return nil, msg end
    f:write(value)
    f:close()
    settled = done()
    if settled then return true end
    core.poll({}, FREEZE_POLL_MS)
  end
  return nil, "the kernel did not finish " .. (frozen and "freezing" or "thawing") .. " it"
end

--- Is the group frozen (lbox pause)?
function Group:frozen()
  local unified = self:unified_path()
  if unified then return (read_file(unified .. "/cgroup.events") or ""):match("frozen 1") ~= nil end
  if not self.controllers.freezer then return false end
  return (read_file(M.hierarchy("freezer") .. "/" .. self.name .. "/freezer.state") or ""):match("^FROZEN") ~= nil
end

--- Thaw container `id`'s group if it is frozen, so that a signal can end
-- it (v1 holds even SIGKILL until then). Quietly does nothing otherwise.
function M.thaw(id)
  local ok, group = pcall(M.open, id)
  if ok and group and group:frozen() then group:freeze(false) end
end

--- Did the kernel's OOM killer kill a process of this group?
function Group:oom_killed()
  if not self.controllers.memory then return false end
  local mount, version = M.hierarchy("memory")
  local file = version == 1 and "memory.oom_control" or "memory.events"
  local text = read_file(mount .. "/" .. self.name .. "/" .. file) or ""
  return (tonumber(text:match("oom_kill (%d+)")) or 0) > 0
end

--- Remove the group; it must have no processes left.
-- @return true | nil, message
function Group:remove()
  self:unlock()
  if not self.handle then return true end
  self.handle:delete()
  -- libcgroup reports success on a busy group: trust the directories
  for _, path in ipairs(self:paths()) do
    if exists(path) then
      return nil, "cgroup " .. path .. " is still busy"
    end
  end
  self.handle:close()
  self.handle = nil
  return true
end

return M

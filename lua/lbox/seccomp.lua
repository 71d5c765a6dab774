--- seccomp: a profile in docker's format (a file, or lbox's copy of
-- docker's default) becomes a plan for this machine (its architectures,
-- its kernel, the container's capabilities), checked in lbox before
-- anything starts; the container's init loads the plan with lbox.core.
local cjson = require "cjson"
local core = require "lbox.core"
local capabilities = require "lbox.capabilities"
local fs = require "lbox.fs"
local lfs = require "lfs"

local M = {}

-- needed only to compile it: a start finds it compiled in the store's cache
M.DEFAULT_PROFILE = require "lbox.lazy" "lbox.seccomp_default"

local ACTIONS = {
  SCMP_ACT_ALLOW = "allow", SCMP_ACT_ERRNO = "errno", SCMP_ACT_KILL = "kill_thread",
  SCMP_ACT_KILL_THREAD = "kill_thread", SCMP_ACT_KILL_PROCESS = "kill_process", SCMP_ACT_TRAP = "trap",
  SCMP_ACT_TRACE = "trace", SCMP_ACT_LOG = "log",
}
local OPS = {
  SCMP_CMP_NE = "ne", SCMP_CMP_LT = "lt", SCMP_CMP_LE = "le", SCMP_CMP_EQ = "eq", SCMP_CMP_GE = "ge",
  SCMP_CMP_GT = "gt", SCMP_CMP_MASKED_EQ = "masked_eq",
}
local EPERM = 1
-- docker's names for architectures in "includes"/"excludes" (Go's), from libseccomp's
local DOCKER_ARCH = { x86_64 = "amd64", aarch64 = "arm64", x86 = "x86" }

--- Read a profile file in docker's JSON format. @return profile | nil, reason
function M.read_profile(path)
  local text = fs.read_file(path)
  if not text then return nil, "cannot read " .. path end
  local ok, profile = pcall(cjson.decode, text)
  if not ok then return nil, path .. " is not JSON: " .. tostring(profile) end
  if type(profile) ~= "table" then return nil, path .. " is not a seccomp profile" end
  return profile
end

-- JSON's null (cjson.null) and absent fields alike.
local function field(t, name)
  local v = t[name]
  if v == cjson.null then return nil end
  return v
end

local function list(t, name)
  local v = field(t, name)
  if v == nil then return {} end
  if type(v) ~= "table" then error(string.format("%q must be a list", name), 0) end
  return v
end

-- A JSON number as the unsigned 64-bit value C gets (Lua's integers wrap).
local function integer(value, what)
  if math.type(value) == "float" and value >= 2 ^ 63 then value = value - 2 ^ 64 end
  local n = math.tointeger(value)
  if not n then error(string.format("%s: %s is not a whole number", what, tostring(value)), 0) end
  return n
end

local function action_of(name, errno_ret, default_errno, what)
  local action = ACTIONS[name]
  if not action then error(string.format("%s: unknown action %q", what, tostring(name)), 0) end
  local data
  if action == "errno" then data = errno_ret and integer(errno_ret, what .. " errnoRet") or default_errno end
  if action == "trace" then data = errno_ret and integer(errno_ret, what .. " errnoRet") or 0 end
  return action, data
end

-- "6.1.0-13-amd64" >= "4.8"?
local function kernel_at_least(release, wanted)
  local have = { release:match("^(%d+)%.(%d+)") }
  local want = { wanted:match("^(%d+)%.(%d+)") }
  if not want[1] then error(string.format("minKernel %q is not a kernel version", wanted), 0) end
  if not have[1] then return true end
  local a, b = tonumber(have[1]), tonumber(want[1])
  if a ~= b then return a > b end
  return tonumber(have[2]) >= tonumber(want[2])
end

local function contains(items, value)
  for _, item in ipairs(items) do if item == value then return true end end
  return false
end

-- Does a rule's includes/excludes let it apply to this container?
local function applies(rule, caps, arch, release)
  local includes, excludes = field(rule, "includes") or {}, field(rule, "excludes") or {}
  for _, cap in ipairs(list(includes, "caps")) do if not caps[cap] then return false end end
  local arches = list(includes, "arches")
  if #arches > 0 and not contains(arches, arch) then return false end
  local min_kernel = field(includes, "minKernel")
  if min_kernel and not kernel_at_least(release, min_kernel) then return false end
  for _, cap in ipairs(list(excludes, "caps")) do if caps[cap] then return false end end
  if contains(list(excludes, "arches"), arch) then return false end
  return true
end

-- The architectures the filter matches: the native one and, from
-- "archMap" (or the older "architectures"), those it can also run.
local function arches_of(profile, native)
  local names = { native }
  local function add(scmp_name)
    if type(scmp_name) ~= "string" then error("architectures must be names", 0) end
    local name = scmp_name:lower():gsub("^scmp_arch_", "")
    if not contains(names, name) then names[#names + 1] = name end
  end
  local arch_map = list(profile, "archMap")
  for _, entry in ipairs(arch_map) do
    local main = field(entry, "architecture")
    if type(main) == "string" and main:lower():gsub("^scmp_arch_", "") == native then
      for _, sub in ipairs(list(entry, "subArchitectures")) do add(sub) end
    end
  end
  if #arch_map == 0 then
    for _, name in ipairs(list(profile, "architectures")) do add(name) end
  end
  return names
end

-- The plan's rules for one profile entry: one per name, its conditions
-- together; when two conditions test the same argument (which seccomp
-- cannot do at once) one rule per condition, as runc does.
local function add_rules(rules, entry, n, default_errno)
  local what = string.format("syscalls[%d]", n)
  local action, data = action_of(field(entry, "action"), field(entry, "errnoRet"), default_errno, what)
  local conditions, seen, repeated = {}, {}, false
  for i, arg in ipairs(list(entry, "args")) do
    local at = string.format("%s args[%d]", what, i)
    local op = OPS[field(arg, "op")]
    if not op then error(string.format("%s: unknown op %q", at, tostring(field(arg, "op"))), 0) end
    local index = integer(field(arg, "index") or -1, at .. " index")
    if index < 0 or index > 5 then error(at .. ": index must be 0 to 5", 0) end
    if seen[index] then repeated = true end
    seen[index] = true
    conditions[i] = { index, op, integer(field(arg, "value") or 0, at .. " value"),
                      integer(field(arg, "valueTwo") or 0, at .. " valueTwo") }
  end
  local groups = { conditions }
  if repeated then
    groups = {}
    for i, c in ipairs(conditions) do groups[i] = { c } end
  end
  local names = list(entry, "names")
  if field(entry, "name") then names = { field(entry, "name"), table.unpack(names) } end
  for _, name in ipairs(names) do
    if type(name) ~= "string" then error(what .. ": names must be strings", 0) end
    for _, group in ipairs(groups) do rules[#rules + 1] = { name, group, action, data } end
  end
end

--- The plan of `profile` (docker's format) for a container with the
-- capabilities `caps` (a list of names) on this machine:
-- { default = { action, errno }, arches = { names }, rules = { { syscall,
-- conditions, action, errno } } }. @return plan | nil, reason
function M.plan(profile, caps)
  local ok, plan = pcall(function()
    local cap_set = {}
    for _, cap in ipairs(caps) do cap_set[cap] = true end
    local native = core.seccomp_arch_native()
    local release = fs.read_file("/proc/sys/kernel/osrelease") or ""
    local default_errno = integer(field(profile, "defaultErrnoRet") or EPERM, "defaultErrnoRet")
    local action, data = action_of(field(profile, "defaultAction"), nil, default_errno, "defaultAction")
    local out = { default = { action, data }, arches = arches_of(profile, native), rules = {} }
    local arch = DOCKER_ARCH[native] or native
    for n, entry in ipairs(list(profile, "syscalls")) do
      if type(entry) ~= "table" then error(string.format("syscalls[%d] is not an object", n), 0) end
      if applies(entry, cap_set, arch, release) then add_rules(out.rules, entry, n, EPERM) end
    end
    return out
  end)
  if not ok then return nil, tostring(plan) end
  return plan
end

--- The BPF program of `plan` (from M.plan), for core.seccomp_load_bpf.
-- Calls libseccomp does not know, and rules that repeat the default
-- action, are left out, as docker does. @return string | nil, message
function M.compile(plan)
  local filter <close>, msg = core.seccomp_filter(plan.default[1], plan.default[2])
  if not filter then return nil, msg end
  for _, arch in ipairs(plan.arches) do
    local ok, why = filter:add_arch(arch)
    if not ok then return nil, why end
  end
  for _, rule in ipairs(plan.rules) do
    local same = rule[3] == plan.default[1] and (rule[4] == plan.default[2] or rule[3] ~= "errno")
    if not same then
      local ok, why, errno = filter:add_rule(rule[1], rule[2], rule[3], rule[4])
      if not ok and errno ~= core.EDOM then return nil, why end
    end
  end
  return filter:export()
end

-- What a compiled program depends on besides the capabilities: the
-- profile's source (lbox's files for the default; the file's identity and
-- time for a profile file), the architecture, the kernel (minKernel) and
-- libseccomp.
local function cache_key(source, caps)
  local parts = {}
  if source == "default" then
    parts[1] = "default"
    -- this file and the profile's, wherever lbox loads them from; a
    -- precompiled copy names its source relative to lbox's root (luac ran
    -- there), which the current directory need not be
    local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
    local cli = package.loaded["lbox.cli"]
    if dir:sub(1, 1) ~= "/" and cli and cli.root then dir = cli.root .. "/" .. dir end
    for _, file in ipairs { "seccomp.lua", "seccomp_default.lua" } do
      local attr = lfs.attributes(dir .. file)
      if not attr then return nil end
      parts[#parts + 1] = string.format("%d-%d", attr.size, attr.modification)
    end
  else
    local attr = lfs.attributes(source)
    if not attr then return nil end
    parts[1] = string.format("file-%d-%d-%d-%d", attr.dev, attr.ino, attr.size, attr.modification)
  end
  local mask = 0
  for _, cap in ipairs(caps) do mask = mask | (1 << capabilities.NUMBERS[cap]) end
  local release = (fs.read_file("/proc/sys/kernel/osrelease") or ""):match("^%d+%.%d+") or "0.0"
  parts[#parts + 1] = string.format("%s.%s.%s.%x", core.seccomp_arch_native(), release, core.seccomp_version(), mask)
  return table.concat(parts, ".")
end

--- The BPF program confining a container with `caps` (names) by
-- `source`: "default" (docker's profile), the path of a profile file, or
-- a profile table. Programs of the default and of files are kept in the
-- directory `cache`: building one takes milliseconds.
-- @return string | nil, reason
function M.program(source, caps, cache)
  local key = type(source) == "string" and cache_key(source, caps)
  local path = key and cache and cache .. "/" .. key
  local cached = path and fs.read_file(path)
  if cached and cached ~= "" then return cached end
  local profile, msg = source
  if source == "default" then
    profile = M.DEFAULT_PROFILE
  elseif type(source) == "string" then
    profile, msg = M.read_profile(source)
    if not profile then return nil, msg end
  end
  local plan
  plan, msg = M.plan(profile, caps)
  if not plan then return nil, msg end
  local program
  program, msg = M.compile(plan)
  if not program then return nil, msg end
  if path and fs.mkdir_p(cache) then
    -- written aside, then renamed: another lbox reads all of it or none
    local partial = string.format("%s/.%s.%d", cache, key, core.getpid())
    local f = io.open(partial, "wb")
    local ok = f and f:write(program)
    if f then ok = f:close() and ok end
    if not (ok and os.rename(partial, path)) then os.remove(partial) end
  end
  return program
end

return M

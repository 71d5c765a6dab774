--- What lbox knows of each container, on disk: `state.json` in the
-- container's directory ($LBOX_STORE/containers/<id>), replaced atomically
-- (write, then rename), so a reader never sees half of it. Whether a
-- container runs is not written down but asked: the process that owns it
-- (lbox, or a detached container's monitor) holds the directory's lock.
local cjson = require "cjson"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local index = require "lbox.index"
local lfs = require "lfs"
local store = require "lbox.store"

local M = {}

function M.base()
  return store.root() .. "/containers"
end

function M.dir(id)
  return M.base() .. "/" .. id
end

--- The state of container `id` | nil
function M.read(id)
  return fs.read_json(M.dir(id) .. "/state.json")
end

--- Replace the state of container `id` with `state`.
function M.write(id, state)
  local path = M.dir(id) .. "/state.json"
  fs.write_file(path .. ".tmp", cjson.encode(state))
  errors.try("cannot record the container's state", os.rename(path .. ".tmp", path))
end

--- Keep the seccomp program container `id` was started with, for exec,
-- which confines its commands with the same filter.
function M.write_seccomp_program(id, program)
  fs.write_file(M.dir(id) .. "/seccomp.bpf", program)
end

--- The seccomp program container `id` was started with | nil (unconfined).
function M.seccomp_program(id)
  return fs.read_file(M.dir(id) .. "/seccomp.bpf")
end

--- Merge `changes` into the state of container `id`.
function M.update(id, changes)
  local state = M.read(id) or { id = id }
  for k, v in pairs(changes) do state[k] = v end
  M.write(id, state)
  return state
end

--- Is the owner of container `id` alive (does it hold the lock)?
function M.owned(id)
  local fd = core.open(M.dir(id) .. "/lock", "rw")
  if not fd then return false end
  local free = core.flock(fd, "exclusive", "nowait")
  core.close(fd) -- releases the probe's lock, if it got it
  return not free
end

--- Block until the owner of container `id` lets go of it (the container
-- ended); at once if it has no owner.
function M.wait_ended(id)
  local fd = core.open(M.dir(id) .. "/lock", "rw")
  if fd then
    core.flock(fd, "shared")
    core.close(fd)
  end
end

--- Wait up to `seconds` for the owners of containers `ids` to let go of
-- them (the containers ended). @return the ids still held, in order
function M.wait_released(ids, seconds)
  local held
  for round = 0, seconds * 10 do
    if round > 0 then core.poll({}, 100) end
    held = {}
    for _, id in ipairs(ids) do
      if M.owned(id) then held[#held + 1] = id end
    end
    if #held == 0 then break end
  end
  return held
end

local STALE_UNLOCKED_SECONDS = 60

--- Remove the directories of containers whose owner died (their lock is
-- free) and that were not kept. A directory without a lock file yet is being
-- made, unless it is old. The caller holds the store lock (lbox.store).
function M.sweep()
  if index.ready() then
    -- only containers that are not kept can be swept: flat as the store grows
    for _, id in ipairs(index.unkept()) do
      local dir = M.dir(id)
      local fd = core.open(dir .. "/lock", "rw")
      if fd then
        if core.flock(fd, "exclusive", "nowait") then
          local name = (M.read(id) or {}).name
          fs.remove_tree(dir)
          index.remove(id, name)
        end
        core.close(fd)
      elseif not fs.exists(dir) then
        index.remove(id)
      elseif os.time() - (lfs.attributes(dir, "modification") or os.time()) > STALE_UNLOCKED_SECONDS then
        fs.remove_tree(dir)
        index.remove(id)
      end
    end
    return
  end
  for id in fs.dir(M.base()) do
    local dir = M.dir(id)
    local fd = core.open(dir .. "/lock", "rw")
    if fd then
      -- a kept container stays until lbox rm
      local kept = (M.read(id) or {}).keep
      if not kept and core.flock(fd, "exclusive", "nowait") then fs.remove_tree(dir) end
      core.close(fd)
    elseif os.time() - (lfs.attributes(dir, "modification") or os.time()) > STALE_UNLOCKED_SECONDS then
      fs.remove_tree(dir)
    end
  end
  -- a store of an lbox before indexes: indexed now, once
  local states = {}
  for id in fs.dir(M.base()) do states[#states + 1] = #id == 64 and M.read(id) or nil end
  index.build(states)
end

--- The container named `name` | nil, from the index of names.
function M.named(name)
  local id = index.named(name)
  local state = id and M.current(id)
  return state and state.name == name and state or nil
end

--- The state of `id` as it is now: a "running" container whose owner died
-- is shown as exited, with no exit code known.
function M.current(id)
  local state = M.read(id)
  if not state then return nil end
  if state.status == "running" and not M.owned(id) then
    state.status, state.exit_code, state.lost = "exited", state.exit_code or -1, true
  end
  return state
end

--- When process `pid` started, in clock ticks after boot (field 22 of
-- /proc/PID/stat) | nil when there is no such process. With the pid, it
-- names one process: a number is reused, the pair is not.
function M.process_start(pid)
  local stat = fs.read_file("/proc/" .. pid .. "/stat")
  -- the command name, field 2, may hold spaces and ")": count from its end
  local fields = stat and stat:match("^.*%) (.*)$")
  if not fields then return nil end
  local n = 2
  for field in fields:gmatch("%S+") do
    n = n + 1
    if n == 22 then return math.tointeger(tonumber(field)) end
  end
  return nil
end

--- A pidfd for the PID 1 of container `recorded` (its state), while that
-- process is the one recorded: a pid reused after the container's end
-- gives nil. Signals sent through the descriptor reach that process or
-- none, even if it ends meanwhile. @return fd | nil, message
function M.open_process(recorded)
  local not_running = string.format("container %s is not running", recorded.id:sub(1, 12))
  if recorded.status ~= "running" or not recorded.pid then return nil, not_running end
  local fd = core.pidfd_open(recorded.pid)
  if not fd then return nil, not_running end
  -- checked after opening: a match means the descriptor names the recorded
  -- process (states written before lbox recorded start times are trusted)
  if recorded.pid_start and M.process_start(recorded.pid) ~= recorded.pid_start then
    core.close(fd)
    return nil, not_running
  end
  return fd
end

--- Every container's current state, newest first.
function M.list()
  local list = {}
  for id in fs.dir(M.base()) do
    local state = #id == 64 and M.current(id)
    if state then list[#list + 1] = state end
  end
  table.sort(list, function(a, b) return (a.created or "") > (b.created or "") end)
  return list
end

--- The container `ref` names: a full id, a unique id prefix, or a name.
-- @return its current state; raises a user error (exit `code`, default 1)
-- when none or several match
function M.find(ref, code)
  code = code or 1 -- docker's for a container command; run says 125
  if type(ref) ~= "string" or ref == "" then errors.raise("a container id or name is required") end
  if index.ready() then return M.find_indexed(ref, code) end
  local matches = {}
  for _, state in ipairs(M.list()) do
    if state.name == ref or state.id == ref then return state end
    if ref:match("^%x+$") and state.id:sub(1, #ref) == ref then matches[#matches + 1] = state end
  end
  if #matches == 0 then errors.raise(string.format("no such container: %s", ref), code) end
  if #matches > 1 then errors.raise(string.format("container id %q is ambiguous: give more digits", ref), code) end
  return matches[1]
end

--- M.find through the index of names and the directory's listing: what
-- it reads does not grow with the store (but for the names of the
-- directories).
function M.find_indexed(ref, code)
  local named = M.named(ref)
  if named then return named end
  local matches = {}
  if ref:match("^%x+$") and #ref <= 64 then
    for id in fs.dir(M.base()) do
      if #id == 64 and id:sub(1, #ref) == ref then matches[#matches + 1] = M.current(id) end
    end
  end
  if #matches == 0 then errors.raise(string.format("no such container: %s", ref), code) end
  if #matches > 1 then errors.raise(string.format("container id %q is ambiguous: give more digits", ref), code) end
  return matches[1]
end

return M

--- Indexes of the store's containers, so that starting one, and finding
-- one by name or id, costs the same with 500 containers in the store as
-- with none: `$LBOX_STORE/index/names/NAME` holds the id of the container
-- of that name, and `index/unkept/ID` names each container that is not
-- kept, the only ones a sweep has to look at (kept containers stay until
-- lbox rm). An entry is a hint checked against the container's own
-- state: a stale one (its container gone, or renamed) counts for nothing.
-- Entries are added under the store lock (lbox.store); a store made by an
-- lbox without indexes is indexed on first use, from a full scan.
local fs = require "lbox.fs"
local store = require "lbox.store"

local M = {}

local function dir(kind)
  return store.root() .. "/index/" .. kind
end

--- Does the store have its indexes?
function M.ready()
  return fs.exists(dir("unkept"))
end

--- Make the indexes from `states` (every container's recorded state),
-- once, under the store lock.
function M.build(states)
  -- what an interrupted build left
  for _, kind in ipairs { "names", "names.new", "unkept.new" } do fs.remove_tree(dir(kind)) end
  for _, kind in ipairs { "names", "unkept" } do fs.mkdir_p(dir(kind) .. ".new") end
  for _, s in ipairs(states) do
    if s.name then fs.write_file(dir("names") .. ".new/" .. s.name, s.id) end
    if not s.keep then fs.write_file(dir("unkept") .. ".new/" .. s.id, "") end
  end
  -- unkept last: its presence says the indexes are complete
  os.rename(dir("names") .. ".new", dir("names"))
  os.rename(dir("unkept") .. ".new", dir("unkept"))
end

--- Record a new container `id` (its `name` | nil; `keep`: lbox rm removes
-- it, no sweep), under the store lock, before its directory exists.
function M.add(id, name, keep)
  -- not indexed yet: the first sweep indexes it all
  if not M.ready() then return end
  if name then
    local path = dir("names") .. "/" .. name
    fs.write_file(path .. ".tmp", id)
    os.rename(path .. ".tmp", path)
  end
  if not keep then fs.write_file(dir("unkept") .. "/" .. id, "") end
end

--- Forget container `id` (its `name` | nil), whose directory is gone.
function M.remove(id, name)
  os.remove(dir("unkept") .. "/" .. id)
  if name and fs.read_file(dir("names") .. "/" .. name) == id then os.remove(dir("names") .. "/" .. name) end
end

--- The id recorded for `name` | nil (check it against the container's state).
function M.named(name)
  if not name:match("^[%w][%w_.-]*$") then return nil end
  return fs.read_file(dir("names") .. "/" .. name)
end

--- The ids of the containers that are not kept, running or left by a dead lbox.
function M.unkept()
  local ids = {}
  for id in fs.dir(dir("unkept")) do ids[#ids + 1] = id end
  return ids
end

return M

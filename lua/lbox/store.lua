--- lbox's store on the host: $LBOX_STORE (default /var/lib/lbox) holds
-- images/ (lbox.images), containers/ (a directory per container, lbox.state)
-- and tmp/ (staging). What must not race, a container taking a name or an
-- image, an image going away, the sweep of dead containers, happens under
-- the store lock.
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"

local M = {}

function M.root()
  return os.getenv("LBOX_STORE") or "/var/lib/lbox"
end

--- Hold the store lock until the result is closed (or lbox ends).
-- @return to-be-closed lock
function M.lock()
  errors.try("cannot create the store", fs.mkdir_p(M.root() .. "/containers"))
  local fd = errors.try("cannot lock the store", core.open(M.root() .. "/containers.lock", "create"))
  core.flock(fd, "exclusive")
  return setmetatable({ fd = fd }, { __close = function(lock) core.close(lock.fd) end })
end

--- Run `fn(dir)` on a fresh directory of the store's staging area
-- (tmp/PREFIX-<hex>), removed on every way out of `fn`. The directory's
-- `.lock` is held meanwhile: a staging directory whose lock nobody holds
-- is what a killed lbox left, and sweep_staging removes it.
-- @return what fn returns
function M.with_staging(prefix, fn)
  local dir = M.root() .. "/tmp/" .. prefix .. "-" .. fs.random_hex(8)
  errors.try("cannot create a staging directory", fs.mkdir_p(dir))
  local fd = errors.try("cannot create a staging directory", core.open(dir .. "/.lock", "create"))
  core.flock(fd, "exclusive")
  local ok, result = pcall(fn, dir)
  fs.remove_tree(dir)
  core.close(fd)
  if not ok then error(result, 0) end
  return result
end

--- Remove the staging directories of lbox processes that died: those
-- whose lock nobody holds, and the trash of removals (tmp/rm-*).
-- @return how many
function M.sweep_staging()
  local count = 0
  for name in fs.dir(M.root() .. "/tmp") do
    local dir = M.root() .. "/tmp/" .. name
    local fd = core.open(dir .. "/.lock", "rw")
    local dead = name:match("^rm%-") ~= nil
    if fd then
      dead = core.flock(fd, "exclusive", "nowait") and true or false
      core.close(fd)
    end
    if dead and fs.remove_tree(dir) then count = count + 1 end
  end
  return count
end

return M

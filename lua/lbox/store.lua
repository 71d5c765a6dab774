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

return M

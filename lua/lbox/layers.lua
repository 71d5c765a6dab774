--- lbox's content-addressed layer store: each layer an unpacked tree under
-- $LBOX_STORE/layers/sha256/<hex>/root, named by the digest of its
-- uncompressed tar (its OCI diff_id), so a layer two images share is
-- unpacked once. A layer is unpacked in the store's staging area, checked
-- entry by entry first (lbox.tar), its whiteouts made overlayfs's, and
-- renamed into place only when complete.
local cjson = require "cjson"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local store = require "lbox.store"
local tar = require "lbox.lazy" "lbox.tar"

local M = {}

-- Extended attributes of every namespace, file capabilities
-- (security.capability) and ACLs among them.
M.TAR_KEEP = "--xattrs --xattrs-include='*' --acls"

local WHITEOUT = ".wh."
local OPAQUE = ".wh..wh..opq"

function M.base()
  return store.root() .. "/layers/sha256"
end

--- Is `digest` a well-formed sha256 digest ("sha256:" and 64 hex digits)?
function M.valid_digest(digest)
  return type(digest) == "string" and digest:match("^sha256:%x+$") ~= nil and #digest == 71
    and not digest:find("[A-F]")
end

--- The directory of layer `digest` (whether or not it is there).
function M.dir(digest)
  return M.base() .. "/" .. digest:sub(8)
end

--- The unpacked tree of layer `digest` | nil when the store has none.
function M.root(digest)
  local root = M.dir(digest) .. "/root"
  return fs.kind(M.dir(digest) .. "/layer.json") == "file" and root or nil
end

--- The record of layer `digest`: { digest, size } | nil
function M.info(digest)
  return fs.read_json(M.dir(digest) .. "/layer.json")
end

--- "sha256:<hex>" of the file at `path`.
function M.digest_file(path)
  local pipe = assert(io.popen("sha256sum < " .. fs.quote(path) .. " 2>/dev/null"))
  local out = pipe:read("a")
  pipe:close()
  local hex = out:match("^(%x+)")
  if not hex or #hex ~= 64 then errors.raise("cannot compute the digest of " .. path) end
  return "sha256:" .. hex
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local size = f:seek("end")
  f:close()
  return size
end

-- Whiteout entries name what they hide: it must be a plain name in the
-- same directory ("." or "..", or nothing, would hide a parent).
local function check_whiteouts(entries)
  for _, e in ipairs(entries) do
    local base = e.name:gsub("/+$", ""):match("([^/]*)$")
    if base:sub(1, #WHITEOUT) == WHITEOUT and base ~= OPAQUE and base:sub(1, 8) ~= ".wh..wh." then
      local hidden = base:sub(#WHITEOUT + 1)
      if hidden == "" or hidden == "." or hidden == ".." then
        return nil, string.format("refusing %q: a whiteout of nothing", e.name)
      end
      if e.type ~= "file" then return nil, string.format("refusing %q: a whiteout that is not a file", e.name) end
    end
  end
  return true
end

-- The whiteouts of an OCI layer extracted at `root` as overlayfs's: a
-- `.wh.NAME` file becomes NAME, a character device 0/0; `.wh..wh..opq`
-- marks its directory opaque (trusted.overlay.opaque=y); aufs's other
-- `.wh..wh.` metadata goes.
local function convert_whiteouts(root)
  local pipe = assert(io.popen("find " .. fs.quote(root) .. " -name '.wh.*' -print0 2>/dev/null"))
  local found = pipe:read("a")
  pipe:close()
  for path in found:gmatch("[^%z]+") do
    local dir, base = path:match("^(.*)/([^/]*)$")
    errors.try("cannot convert a whiteout", os.remove(path))
    if base == OPAQUE then
      fs.run("cannot mark " .. dir .. " opaque", "setfattr -n trusted.overlay.opaque -v y %s", dir)
    elseif base:sub(1, 8) ~= ".wh..wh." then
      local hidden = dir .. "/" .. base:sub(#WHITEOUT + 1)
      if fs.kind(hidden) then errors.try("cannot convert a whiteout", fs.remove_tree(hidden)) end
      errors.try("cannot convert a whiteout", core.mknod(hidden, "char", 0, 0, 0))
    end
  end
end

--- Make the uncompressed tar at `archive` a layer (unless the store has
-- it): checked, extracted in staging, whiteouts converted, moved into
-- place. With `expected`, the archive's digest must be it.
-- @param what names the source in errors
-- @return digest
function M.add(archive, what, expected)
  local digest = M.digest_file(archive)
  if expected and digest ~= expected then
    errors.raise(string.format("%s: its content has digest %s, not %s as the image says", what, digest, expected))
  end
  if M.root(digest) then return digest end
  local f = assert(io.open(archive, "rb"))
  local entries, msg = tar.entries(f)
  f:close()
  if not entries then errors.raise(string.format("cannot import %s: %s", what, msg)) end
  local ok, why = tar.check(entries)
  if ok then ok, why = check_whiteouts(entries) end
  if not ok then errors.raise(string.format("cannot import %s: %s", what, why)) end
  store.with_staging("layer", function(staging)
    errors.try("cannot create a staging directory", fs.mkdir_p(staging .. "/layer/root"))
    -- as root, GNU tar keeps owners, modes (setuid too), nodes and hard links
    fs.run("cannot extract " .. what, "tar -xf %s -C %s/layer/root --numeric-owner --no-overwrite-dir " .. M.TAR_KEEP,
      archive, staging)
    convert_whiteouts(staging .. "/layer/root")
    fs.write_file(staging .. "/layer/layer.json", cjson.encode { digest = digest, size = file_size(archive) })
    errors.try("cannot create the layer store", fs.mkdir_p(M.base()))
    local moved, rename_msg = os.rename(staging .. "/layer", M.dir(digest))
    -- another pull or import unpacked it meanwhile: theirs will do
    if not moved and not M.root(digest) then errors.raise("cannot store layer " .. digest .. ": " .. rename_msg) end
  end)
  return digest
end

--- Every layer in the store: list of digests.
function M.list()
  local list = {}
  for hex in fs.dir(M.base()) do list[#list + 1] = "sha256:" .. hex end
  table.sort(list)
  return list
end

--- Remove every layer not in `used` (a set of digests), and half-made
-- ones. Call under the store lock. @return list of removed digests
function M.collect(used)
  local removed = {}
  for _, digest in ipairs(M.list()) do
    if not used[digest] then
      -- rename first: a half-removed layer is never visible under its name
      local trash = store.root() .. "/tmp/rm-" .. fs.random_hex(8)
      errors.try("cannot create the store's staging area", fs.mkdir_p(store.root() .. "/tmp"))
      errors.try("cannot remove layer " .. digest, os.rename(M.dir(digest), trash))
      fs.remove_tree(trash)
      removed[#removed + 1] = digest
    end
  end
  return removed
end

return M

--- lbox's image store: one directory per image, `rootfs/` and a small
-- `manifest.json`, under $LBOX_STORE/images (default /var/lib/lbox).
-- Imports are checked (lbox.tar) and extracted into a staging directory that
-- becomes the image only when complete, so a failed import leaves nothing.
local cjson = require "cjson"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local lfs = require "lfs"
local state = require "lbox.state"
local store = require "lbox.store"
local tar = require "lbox.tar"

local M = {}

M.DEFAULT = "busybox"

M.store = store.root

-- Extended attributes of every namespace, file capabilities
-- (security.capability) and ACLs among them, into and out of images.
M.TAR_KEEP = "--xattrs --xattrs-include='*' --acls"
--- Archive the directory `dir`'s own filesystem (not what is mounted in
-- it) into the tarball `archive` (raising a user error starting with
-- `what`), with `flags` more for tar. "Changed as we read it" (tar's exit 1)
-- is no failure: a running container's root changes as it is read (on a
-- 6.1 kernel, reading the ACL of its /sys mount point alone does), and what
-- was read is the snapshot, as docker export's.
function M.archive_live(what, dir, archive, flags)
  fs.run(what, "{ tar -C %s --one-file-system --warning=no-file-changed " .. M.TAR_KEEP .. " " .. flags
    .. " -cf %s . || [ $? -eq 1 ]; }", dir, archive)
end

local function images_dir()
  return M.store() .. "/images"
end

--- Is `name` usable as an image name?
function M.valid_name(name)
  return type(name) == "string" and #name <= 128 and name:match("^[%w][%w_.:-]*$") ~= nil
end

local function check_name(name)
  if not M.valid_name(name) then
    errors.raise(string.format("invalid image name %q: use letters, digits, '_', '.', ':' and '-'", tostring(name)))
  end
end

local function read_manifest(dir)
  local f = io.open(dir .. "/manifest.json")
  if not f then return nil end
  local ok, manifest = pcall(cjson.decode, f:read("a"))
  f:close()
  return ok and type(manifest) == "table" and manifest or nil
end

-- A fresh directory in the store's staging area, removed on failure by `staged`.
local function staging_dir()
  local dir = M.store() .. "/tmp/" .. fs.random_hex(8)
  errors.try("cannot create a staging directory", fs.mkdir_p(dir))
  return dir
end

-- Run `fill(dir)` on a staging directory and make the result image `name`.
local function staged(name, source, fill)
  local dir = staging_dir()
  local ok, err = pcall(function()
    errors.try("cannot create the image", fs.mkdir_p(dir .. "/rootfs"))
    fill(dir)
    local manifest = { name = name, source = source, created = os.date("!%Y-%m-%dT%H:%M:%SZ"), cmd = { "sh" } }
    fs.write_file(dir .. "/manifest.json", cjson.encode(manifest))
    errors.try("cannot create the image store", fs.mkdir_p(images_dir()))
    local moved, msg = os.rename(dir, images_dir() .. "/" .. name)
    if not moved then
      errors.raise(string.format("cannot store image %q: %s", name,
        fs.exists(images_dir() .. "/" .. name) and "an image of that name exists" or msg))
    end
  end)
  if not ok then
    fs.remove_tree(dir)
    error(err, 0)
  end
  return M.get(name)
end

--- The built-in image: Debian's static busybox and its applets, made
-- offline on first use.
function M.build_default()
  local busybox = fs.find_program("busybox")
  if not busybox then
    errors.raise("the built-in image needs busybox: apt-get install busybox-static (or make deps)")
  end
  return staged(M.DEFAULT, "built-in from " .. busybox, function(dir)
    local root = dir .. "/rootfs"
    for _, sub in ipairs { "bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root",
                           "var/tmp", "run", "home" } do
      errors.try("cannot build the image", fs.mkdir_p(root .. "/" .. sub))
    end
    fs.run("cannot build the image",
      "cp %s %s/bin/busybox && chmod 1777 %s/tmp %s/var/tmp && chmod 700 %s/root && "
      .. "chroot %s /bin/busybox --install -s", busybox, root, root, root, root, root)
    fs.write_file(root .. "/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    fs.write_file(root .. "/etc/group", "root:x:0:\nnogroup:x:65534:\n")
  end)
end

--- Image `name`: { name, rootfs, manifest } | nil. The built-in image is made
-- when first asked for.
function M.get(name)
  if not M.valid_name(name) then return nil end
  local dir = images_dir() .. "/" .. name
  local manifest = read_manifest(dir)
  if not manifest and name == M.DEFAULT then return M.build_default() end
  if not manifest then return nil end
  return { name = name, rootfs = dir .. "/rootfs", manifest = manifest, dir = dir }
end

local function decompressor(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local magic = f:read(6) or ""
  f:close()
  if magic:sub(1, 2) == "\31\139" then return "gzip -dc" end
  if magic == "\253\55\122\88\90\0" then return "xz -dc" end
  return "cat"
end

--- Import a tarball (a `docker export`, plain, .gz or .xz) or a directory
-- as image `name`. Refuses archives that would write outside the image.
-- `tar_options`: more options for reading a directory (lbox.views').
function M.import(source, name, tar_options)
  check_name(name)
  if M.get(name) then errors.raise(string.format("image %q exists: remove it first (lbox image rm %s)", name, name)) end
  local kind = lfs.attributes(source, "mode") -- a link to a directory will do
  if kind ~= "file" and kind ~= "directory" then
    errors.raise(string.format("cannot import %q: no such file or directory", source))
  end
  return staged(name, source, function(dir)
    local archive = dir .. "/import.tar"
    if kind == "directory" then
      -- the directory's own filesystem: not what is mounted inside it
      M.archive_live("cannot read " .. source, source, archive, tar_options or "")
    else
      -- the decompressor is one of lbox's own command lines, not user input
      fs.run("cannot read " .. source, decompressor(source) .. " < %s > %s", source, archive)
    end
    local f = assert(io.open(archive, "rb"))
    local entries, msg = tar.entries(f)
    f:close()
    if not entries then errors.raise(string.format("cannot import %q: %s", source, msg)) end
    local ok, why = tar.check(entries)
    if not ok then errors.raise(string.format("cannot import %q: %s", source, why)) end
    -- as root, GNU tar keeps owners, modes (setuid too), nodes and hard links
    fs.run("cannot extract " .. source, "tar -xf %s -C %s/rootfs --numeric-owner --no-overwrite-dir "
      .. M.TAR_KEEP, archive, dir)
    os.remove(archive)
  end)
end

--- Write the filesystem at `root` (a container's, see lbox.views.open)
-- to the tarball `file`: that filesystem only, without what is mounted in
-- it (/proc, /sys, /dev, volumes). `tar_options`: more, as import's.
function M.export(root, file, tar_options)
  local partial = file .. ".partial"
  local ok, err = pcall(M.archive_live, "cannot export to " .. file, root, partial,
    "--numeric-owner" .. (tar_options or ""))
  if not ok then
    os.remove(partial)
    error(err, 0)
  end
  errors.try("cannot export to " .. file, os.rename(partial, file))
end

--- All images, sorted by name.
function M.list()
  local list = {}
  for name in fs.dir(images_dir()) do
    local image = M.valid_name(name) and read_manifest(images_dir() .. "/" .. name)
    if image then list[#list + 1] = image end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

--- Remove image `name`; refused while a container, running or kept, has
-- it as the lower half of its layer (as docker refuses without -f).
function M.remove(name)
  check_name(name)
  local dir = images_dir() .. "/" .. name
  -- under the store lock: no container takes the image meanwhile
  local lock <close> = store.lock() -- luacheck: no unused (held until return)
  if not read_manifest(dir) then errors.raise(string.format("no image %q", name)) end
  state.sweep() -- the dead do not count
  local users = {}
  for _, s in ipairs(state.list()) do
    if s.lower == dir .. "/rootfs" then users[#users + 1] = s.id:sub(1, 12) end
  end
  if #users > 0 then
    errors.raise(string.format("image %q is used by container%s %s: remove %s first (lbox rm)", name,
      #users > 1 and "s" or "", table.concat(users, ", "), #users > 1 and "them" or "it"))
  end
  -- rename first: a half-removed image is never visible under its name
  local trash = M.store() .. "/tmp/rm-" .. fs.random_hex(8)
  errors.try("cannot create the store's staging area", fs.mkdir_p(M.store() .. "/tmp"))
  errors.try("cannot remove image " .. name, os.rename(dir, trash))
  fs.remove_tree(trash)
end

return M

--- lbox's image store: an image is a record under $LBOX_STORE/images/NAME
-- (`manifest.json`: its name, layers bottom first, configuration, id,
-- size; `config.json`: its OCI image configuration) over layers of the
-- content-addressed layer store (lbox.layers), shared between images. A
-- one-layer image also has `rootfs`, a link to its layer. Images from
-- before layers (a `rootfs` directory, no layers) still run.
-- Imports are checked (lbox.tar) and unpacked in a staging directory that
-- becomes a layer only when complete, so a failed import leaves nothing.
local cjson = require "cjson"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local layers = require "lbox.layers"
local lfs = require "lfs"
local state = require "lbox.state"
local store = require "lbox.store"

local M = {}

M.DEFAULT = "busybox"

M.store = store.root

-- Extended attributes of every namespace, file capabilities
-- (security.capability) and ACLs among them, into and out of images.
M.TAR_KEEP = layers.TAR_KEEP
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

--- Is `name` usable as an image name? A registry's references are:
-- `127.0.0.1:5000/library/alpine:3`, `name@sha256:...`.
function M.valid_name(name)
  return type(name) == "string" and #name <= 255 and name:match("^[%w][%w_.:/@-]*$") ~= nil
    and not name:find("//", 1, true) and not name:find("/%.") and name:sub(-1) ~= "/"
end

local function check_name(name)
  if not M.valid_name(name) then
    errors.raise(string.format("invalid image name %q: use letters, digits, '_', '.', ':', '/', '@' and '-'",
      tostring(name)))
  end
end

-- An image's directory: its name, with '/' (never in a file name) as '%'.
local function image_dir(name)
  return images_dir() .. "/" .. name:gsub("/", "%%")
end

local function read_manifest(dir)
  return fs.read_json(dir .. "/manifest.json")
end

local by_name, used_layers, remove_record -- below

local function now()
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

-- Run `fn(dir)` with a staging directory, removed on every way out.
local function with_staging(fn)
  return store.with_staging("image", fn)
end

--- Record image `name` on layers `digests` (bottom first, all in the
-- layer store) with the OCI image configuration `config` (a table; its
-- rootfs is filled in) and the record's other fields `fields` (source,
-- digest of a registry's manifest; replace: an image of that name goes,
-- and the layers only it used). Under the store lock, so that no
-- prune takes a layer meanwhile. @return the image (see get)
function M.record(name, digests, config, fields)
  check_name(name)
  fields = fields or {}
  config.rootfs = { type = "layers", diff_ids = digests }
  local config_json = cjson.encode(config)
  local lock <close> = store.lock() -- luacheck: no unused (held until return)
  local size = 0
  for _, digest in ipairs(digests) do
    local info = layers.info(digest)
    if not info then errors.raise("layer " .. digest .. " went away (pruned meanwhile): try again") end
    size = size + (info.size or 0)
  end
  return with_staging(function(dir)
    fs.write_file(dir .. "/config.json", config_json)
    local record = { name = name, created = now(), layers = digests, id = layers.digest_file(dir .. "/config.json"),
                     size = size, cmd = (config.config or {}).Cmd, source = fields.source, digest = fields.digest }
    fs.write_file(dir .. "/manifest.json", cjson.encode(record))
    if #digests == 1 then
      errors.try("cannot create the image", lfs.link("../../layers/sha256/" .. digests[1]:sub(8) .. "/root",
        dir .. "/rootfs", true))
    end
    errors.try("cannot create the image store", fs.mkdir_p(images_dir()))
    local old = fields.replace and by_name(name)
    if old then remove_record(old.dir, name) end
    local moved, msg = os.rename(dir, image_dir(name))
    if not moved then
      errors.raise(string.format("cannot store image %q: %s", name,
        fs.exists(image_dir(name) .. "/manifest.json") and "an image of that name exists" or msg))
    end
    if old then layers.collect(used_layers()) end
    return M.get(name)
  end)
end

-- The configuration of an image made from a tarball or directory: sh.
local function plain_config()
  return { architecture = "amd64", os = "linux", created = now(), config = { Cmd = { "sh" } } }
end

--- The built-in image: Debian's static busybox and its applets, made
-- offline on first use, as a one-layer image.
function M.build_default()
  local busybox = fs.find_program("busybox")
  if not busybox then
    errors.raise("the built-in image needs busybox: apt-get install busybox-static (or make deps)")
  end
  return with_staging(function(dir)
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
    fs.run("cannot build the image", "tar -C %s --numeric-owner --sort=name -cf %s .", root, dir .. "/layer.tar")
    local digest = layers.add(dir .. "/layer.tar", "the built-in image")
    local ok, image = pcall(M.record, M.DEFAULT, { digest }, plain_config(), { source = "built-in from " .. busybox })
    -- another lbox built it meanwhile: theirs will do
    if not ok then return M.get(M.DEFAULT) or error(image, 0) end
    return image
  end)
end

function by_name(name)
  local dir = image_dir(name)
  local manifest = read_manifest(dir)
  if not manifest then return nil end
  local image = { name = name, manifest = manifest, dir = dir, config = {} }
  if manifest.layers then
    local roots = {}
    -- overlayfs's lowerdir lists the top layer first
    for i = #manifest.layers, 1, -1 do roots[#roots + 1] = layers.dir(manifest.layers[i]) .. "/root" end
    image.lower = table.concat(roots, ":")
    image.rootfs = #roots == 1 and roots[1] or nil
    image.config = (fs.read_json(dir .. "/config.json") or {}).config or {}
  else -- an image from before layers
    image.rootfs, image.lower = dir .. "/rootfs", dir .. "/rootfs"
    image.config = { Cmd = manifest.cmd }
  end
  return image
end

--- Image `name`: { name, lower (overlayfs's lowerdir), rootfs (its one
-- layer's tree | nil), manifest, config (OCI's Entrypoint, Cmd, Env,
-- WorkingDir, User, Labels...), dir } | nil. `name` without a tag finds
-- NAME:latest and NAME:latest finds NAME, as docker's names go. The
-- built-in image is made when first asked for.
function M.get(name)
  if not M.valid_name(name) then return nil end
  local image = by_name(name)
  if not image and not name:find("[:@][^/]*$") then image = by_name(name .. ":latest") end
  if not image and name:sub(-7) == ":latest" then image = by_name(name:sub(1, -8)) end
  if not image and (name == M.DEFAULT or name == M.DEFAULT .. ":latest") then return M.build_default() end
  return image
end

--- What the image's configuration makes of `lbox run`: the command
-- (Entrypoint followed by `args`, or by the image's Cmd when there are
-- none, as docker combines them; `entrypoint`, --entrypoint's word,
-- replaces the image's and drops its Cmd, "" leaving none), and the
-- environment, working directory and user the image asks for.
-- @return { command, env = { NAME = value }, workdir | nil, user | nil, labels,
-- exposed = { { port, protocol } } (ExposedPorts, for -P) }
function M.run_settings(image, args, entrypoint)
  local config = image and image.config or {}
  local function strings(list)
    local out = {}
    for _, word in ipairs(type(list) == "table" and list or {}) do
      if type(word) == "string" then out[#out + 1] = word end
    end
    return out
  end
  local command = strings(config.Entrypoint)
  if entrypoint then command = entrypoint == "" and {} or { entrypoint } end
  local rest = #args > 0 and args or (entrypoint and {} or strings(config.Cmd))
  table.move(rest, 1, #rest, #command + 1, command)
  local env = {}
  for _, item in ipairs(strings(config.Env)) do
    local name, value = item:match("^([^=]+)=(.*)$")
    if name then env[name] = value end
  end
  local labels = {}
  for k, v in pairs(type(config.Labels) == "table" and config.Labels or {}) do
    if type(k) == "string" and type(v) == "string" then labels[k] = v end
  end
  -- ExposedPorts: { ["80/tcp"] = {} }, sorted for a stable order
  local exposed = {}
  for key in pairs(type(config.ExposedPorts) == "table" and config.ExposedPorts or {}) do
    local port, protocol = tostring(key):match("^(%d+)/?(%a*)$")
    port = math.tointeger(tonumber(port))
    protocol = protocol == "" and "tcp" or protocol
    if port and port >= 1 and port <= 65535 and (protocol == "tcp" or protocol == "udp") then
      exposed[#exposed + 1] = { port = port, protocol = protocol }
    end
  end
  table.sort(exposed, function(a, b) return a.port < b.port or (a.port == b.port and a.protocol < b.protocol) end)
  local function text(value) return type(value) == "string" and value ~= "" and value or nil end
  return { command = command, env = env, workdir = text(config.WorkingDir), user = text(config.User),
           labels = labels, exposed = exposed }
end

--- Does image `image` hold `word` as a command in one of the directories
-- of `path` (a PATH's value)? Looked up in its layers, top first, as
-- overlayfs would show them: a whiteout hides what lies below.
function M.has_command(image, word, path)
  local roots = {}
  for root in (image.lower or ""):gmatch("[^:]+") do roots[#roots + 1] = root end
  for dir in path:gmatch("[^:]+") do
    for _, root in ipairs(roots) do
      local attributes = lfs.symlinkattributes(root .. dir .. "/" .. word)
      if attributes then
        local whiteout = attributes.mode == "char device" and attributes.rdev == 0
        if not whiteout then return true end
        break
      end
    end
  end
  return false
end

local function decompressor(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local magic = f:read(6) or ""
  f:close()
  if magic:sub(1, 2) == "\31\139" then return "gzip -dc" end
  if magic == "\253\55\122\88\90\0" then return "xz -dc" end
  if magic:sub(1, 4) == "\40\181\47\253" then return "zstd -dcq" end
  return "cat"
end
M.decompressor = decompressor

--- Import a tarball (a `docker export`, plain, .gz, .xz or .zst) or a
-- directory as image `name`, of one layer. Refuses archives that would
-- write outside the image. `tar_options`: more options for reading a
-- directory (lbox.views').
function M.import(source, name, tar_options)
  check_name(name)
  if by_name(name) then errors.raise(string.format("image %q exists: remove it first (lbox image rm %s)", name, name)) end
  local kind = lfs.attributes(source, "mode") -- a link to a directory will do
  if kind ~= "file" and kind ~= "directory" then
    errors.raise(string.format("cannot import %q: no such file or directory", source))
  end
  return with_staging(function(dir)
    local archive = dir .. "/import.tar"
    if kind == "directory" then
      -- the directory's own filesystem: not what is mounted inside it
      M.archive_live("cannot read " .. source, source, archive, "--numeric-owner " .. (tar_options or ""))
    else
      -- the decompressor is one of lbox's own command lines, not user input
      fs.run("cannot read " .. source, decompressor(source) .. " < %s > %s", source, archive)
    end
    local digest = layers.add(archive, string.format("%q", source))
    return M.record(name, { digest }, plain_config(), { source = source })
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


--- What lbox knows of image `name`: its record and its OCI configuration.
-- Raises a user error when there is no such image.
function M.inspect(name)
  local image = M.get(name)
  if not image then errors.raise(string.format("no image %q", tostring(name))) end
  local record = {}
  for k, v in pairs(image.manifest) do record[k] = v end
  record.config = fs.read_json(image.dir .. "/config.json") or { config = image.config }
  return record
end

--- All images, sorted by name: list of { name, id, size, created, source, layers }.
function M.list()
  local list = {}
  for entry in fs.dir(images_dir()) do
    local name = entry:gsub("%%", "/")
    local image = M.valid_name(name) and read_manifest(images_dir() .. "/" .. entry)
    if image then list[#list + 1] = image end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

-- The ids of the containers (running, or ended and kept) whose layer lies
-- on `lower`. Call under the store lock.
local function users_of(lower)
  state.sweep() -- the dead do not count
  local users = {}
  for _, s in ipairs(state.list()) do
    if s.lower == lower then users[#users + 1] = s.id:sub(1, 12) end
  end
  return users
end

-- The layers an image or a container uses: a set of digests.
function used_layers()
  local used = {}
  for _, image in ipairs(M.list()) do
    for _, digest in ipairs(image.layers or {}) do used[digest] = true end
  end
  for _, s in ipairs(state.list()) do
    for hex in (s.lower or ""):gmatch("/layers/sha256/(%x+)/root") do used["sha256:" .. hex] = true end
  end
  return used
end

-- Remove the record at `dir`: renamed first, so that a half-removed image
-- is never visible under its name.
function remove_record(dir, name)
  local trash = M.store() .. "/tmp/rm-" .. fs.random_hex(8)
  errors.try("cannot create the store's staging area", fs.mkdir_p(M.store() .. "/tmp"))
  errors.try("cannot remove image " .. name, os.rename(dir, trash))
  fs.remove_tree(trash)
end

--- Remove image `name` and the layers no other image or container uses;
-- refused while a container, running or kept, runs on it (as docker
-- refuses without -f).
function M.remove(name)
  check_name(name)
  -- under the store lock: no container takes the image meanwhile
  local lock <close> = store.lock() -- luacheck: no unused (held until return)
  local image = by_name(name) or (not name:find("[:@][^/]*$") and by_name(name .. ":latest"))
  if not image then errors.raise(string.format("no image %q", name)) end
  -- another name for the same layers keeps them: only a name goes
  local other_name = false
  for _, record in ipairs(M.list()) do
    local other = record.name ~= image.name and by_name(record.name)
    other_name = other_name or (other and other.lower == image.lower)
  end
  local users = other_name and {} or users_of(image.lower)
  if #users > 0 then
    errors.raise(string.format("image %q is used by container%s %s: remove %s first (lbox rm)", name,
      #users > 1 and "s" or "", table.concat(users, ", "), #users > 1 and "them" or "it"))
  end
  remove_record(image.dir, name)
  layers.collect(used_layers())
end

--- Remove what nothing uses: layers of no image, downloads a pull left
-- (lbox.registry resumes them otherwise), the staging directories of lbox
-- processes that were killed, and with `all`, every image no
-- container runs on. @return { images = names, layers = digests }
function M.prune(all)
  local lock <close> = store.lock() -- luacheck: no unused (held until return)
  local removed = { images = {}, layers = {} }
  if all then
    for _, record in ipairs(M.list()) do
      local image = by_name(record.name)
      if image and #users_of(image.lower) == 0 then
        remove_record(image.dir, image.name)
        removed.images[#removed.images + 1] = image.name
      end
    end
  end
  removed.layers = layers.collect(used_layers())
  errors.try("cannot remove downloads", fs.remove_tree(M.store() .. "/downloads"))
  store.sweep_staging()
  return removed
end

return M

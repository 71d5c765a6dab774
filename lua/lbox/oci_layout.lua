--- OCI image layouts (a directory with `oci-layout`, `index.json` and
-- `blobs/sha256/`, as skopeo, podman and umoci read and write them), into
-- and out of lbox's store: `lbox image import oci:DIR[:TAG] NAME` and
-- `lbox image save NAME oci:DIR[:TAG]`; and `docker save` archives in:
-- `lbox image import docker-archive:FILE NAME`.
local cjson = require "cjson"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local images = require "lbox.images"
local layers = require "lbox.layers"
local lfs = require "lfs"
local registry = require "lbox.registry"
local store = require "lbox.store"
local tar = require "lbox.tar"

local M = {}

local REF_NAME = "org.opencontainers.image.ref.name"
local OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
local OCI_INDEX = "application/vnd.oci.image.index.v1+json"

--- "DIR[:TAG]" -> DIR, TAG | nil (a tag has no '/')
function M.parse(text)
  local dir, tag = text:match("^(.+):([%w_][%w_.-]*)$")
  if dir then return dir, tag end
  return text, nil
end

local function with_staging(fn)
  return store.with_staging("oci", fn)
end

-- A layout as a source of blobs for registry.install: each read in place,
-- checked against its digest.
local function layout_source(dir)
  return {
    keep_blobs = true,
    blob = function(_, r, digest, _, what)
      local path = dir .. "/blobs/sha256/" .. digest:sub(8)
      if fs.kind(path) ~= "file" then errors.raise(string.format("%s: %s %s is not in %s", r.name, what, digest, dir)) end
      local got = layers.digest_file(path)
      if got ~= digest then
        errors.raise(string.format("%s: %s %s has digest %s: refused, nothing stored", r.name, what, digest, got))
      end
      return path
    end,
  }
end

--- Import the image tagged `tag` (or the only one) of the layout in `dir`
-- as image `name`. @return the image
function M.import(dir, tag, name)
  if not images.valid_name(name) then errors.raise(string.format("invalid image name %q", tostring(name))) end
  if images.get(name) then errors.raise(string.format("image %q exists: remove it first (lbox image rm %s)", name, name)) end
  local layout = fs.read_file(dir .. "/oci-layout")
  if not layout or not layout:find('"imageLayoutVersion"') then
    errors.raise(string.format("%s is not an OCI image layout (no oci-layout file)", dir))
  end
  local r = { name = name }
  local index = registry.decode(dir .. "/index.json", fs.read_file(dir .. "/index.json") or "")
  local entries = {}
  for _, entry in ipairs(type(index.manifests) == "table" and index.manifests or {}) do
    local ref = type(entry) == "table" and type(entry.annotations) == "table" and entry.annotations[REF_NAME]
    if not tag or ref == tag then entries[#entries + 1] = entry end
  end
  if #entries == 0 then
    errors.raise(string.format("%s has no image%s", dir, tag and " tagged " .. tag or ""))
  end
  local source = layout_source(dir)
  local entry = #entries == 1 and entries[1] or registry.pick_platform(r, { manifests = entries })
  return with_staging(function(tmp)
    local digest = type(entry.digest) == "string" and entry.digest or ""
    if not layers.valid_digest(digest) then errors.raise(dir .. "/index.json: a bad digest") end
    local manifest = registry.decode(name .. ": its manifest", fs.read_file(source:blob(r, digest, nil, "manifest")))
    if manifest.manifests then -- a nested index
      digest = registry.pick_platform(r, manifest).digest
      manifest = registry.decode(name .. ": its manifest", fs.read_file(source:blob(r, digest, nil, "manifest")))
    end
    return registry.install(source, r, manifest, digest, tmp, { source = "oci:" .. dir .. (tag and ":" .. tag or "") })
  end)
end

local function realpath(path)
  local pipe = assert(io.popen("realpath -e -- " .. fs.quote(path) .. " 2>/dev/null"))
  local real = pipe:read("l")
  pipe:close()
  return real
end

-- `path` of a docker archive's manifest.json, under `root`: never out of it.
local function inside(root, path, what)
  if type(path) ~= "string" or path == "" or path:sub(1, 1) == "/" or ("/" .. path .. "/"):find("/%.%./") then
    errors.raise(string.format("the archive's manifest.json names a bad %s: %s", what, tostring(path)))
  end
  -- docker's older archives link a layer seen twice: followed, but only
  -- to a file of the archive
  local real, real_root = realpath(root .. "/" .. path), realpath(root)
  if not real or not real_root or real:sub(1, #real_root + 1) ~= real_root .. "/" or fs.kind(real) ~= "file" then
    errors.raise(string.format("the archive has no %s %s", what, path))
  end
  return real
end

--- Import the image of a `docker save` archive `file` (one image; its
-- layer tars plain or compressed) as image `name`. The archive is checked
-- entry by entry before it is unpacked, each layer against its diff_id and
-- entry by entry as a pull's. @return the image
function M.import_docker_archive(file, name)
  if not images.valid_name(name) then errors.raise(string.format("invalid image name %q", tostring(name))) end
  if images.get(name) then errors.raise(string.format("image %q exists: remove it first (lbox image rm %s)", name, name)) end
  local f = io.open(file, "rb")
  if not f then errors.raise(string.format("cannot import %q: no such file", file)) end
  local entries, msg = tar.entries(f)
  f:close()
  if not entries then errors.raise(string.format("cannot import %q: %s", file, msg)) end
  local ok, why = tar.check(entries)
  if not ok then errors.raise(string.format("cannot import %q: %s", file, why)) end
  return with_staging(function(tmp)
    local root = tmp .. "/archive"
    errors.try("cannot create a staging directory", fs.mkdir_p(root))
    -- no links, devices or owners of its own: its files are data
    fs.run("cannot unpack " .. file, "tar -xf %s -C %s --no-same-owner --no-same-permissions", file, root)
    local list = registry.decode(file .. ": its manifest.json", fs.read_file(root .. "/manifest.json") or "")
    if #list ~= 1 or type(list[1]) ~= "table" then
      errors.raise(string.format("%s holds %d images: lbox imports an archive of one", file, #list))
    end
    local entry = list[1]
    local config = registry.decode(file .. ": its configuration", fs.read_file(inside(root, entry.Config, "config")))
    local diff_ids = type(config.rootfs) == "table" and config.rootfs.diff_ids
    if type(entry.Layers) ~= "table" or type(diff_ids) ~= "table" or #diff_ids ~= #entry.Layers then
      errors.raise(string.format("%s: its configuration does not list one diff_id per layer", file))
    end
    for i, layer in ipairs(entry.Layers) do
      local what = string.format("layer %d/%d of %s", i, #entry.Layers, file)
      if not layers.valid_digest(diff_ids[i]) then errors.raise(what .. ": a bad diff_id") end
      local path = inside(root, layer, "layer")
      if not layers.root(diff_ids[i]) then
        local archive = tmp .. "/layer.tar"
        fs.run("cannot decompress " .. what, images.decompressor(path) .. " < %s > %s", path, archive)
        layers.add(archive, what, diff_ids[i])
        os.remove(archive)
      end
      os.remove(path)
    end
    return images.record(name, diff_ids, config, { source = "docker-archive:" .. file })
  end)
end

-- Write `data` as a blob of the layout being made at `dir`. @return descriptor fields
local function put_blob(dir, data_path)
  local digest = layers.digest_file(data_path)
  -- mv: the layout may be on another filesystem than the store's staging
  fs.run("cannot write the layout", "mv %s %s", data_path, dir .. "/blobs/sha256/" .. digest:sub(8))
  return digest, lfs.attributes(dir .. "/blobs/sha256/" .. digest:sub(8), "size")
end

-- A copy of the layer tree `root` at `copy` with overlayfs's whiteouts as
-- OCI's: a character device 0/0 becomes an empty `.wh.NAME`, an opaque
-- directory gets `.wh..wh..opq` (and loses the attribute).
local function oci_whiteouts(root, copy)
  fs.run("cannot copy a layer", "cp -a %s %s", root, copy)
  local pipe = assert(io.popen("find " .. fs.quote(copy) .. " -type c -print0 2>/dev/null"))
  local found = pipe:read("a")
  pipe:close()
  for path in found:gmatch("[^%z]+") do
    if lfs.symlinkattributes(path, "rdev") == 0 then
      local dir, base = path:match("^(.*)/([^/]*)$")
      errors.try("cannot convert a whiteout", os.remove(path))
      fs.write_file(dir .. "/.wh." .. base, "")
    end
  end
  pipe = assert(io.popen("getfattr -R -P --absolute-names -n trusted.overlay.opaque " .. fs.quote(copy)
    .. " 2>/dev/null"))
  local listing = pipe:read("a")
  pipe:close()
  for path, value in listing:gmatch("# file: ([^\n]+)\ntrusted%.overlay%.opaque=\"(%a)\"") do
    if value == "y" then
      fs.run("cannot convert an opaque directory", "setfattr -x trusted.overlay.opaque %s", path)
      fs.write_file(path .. "/.wh..wh..opq", "")
    end
  end
end

-- Each layer of `image` as a plain tar (whiteouts as OCI's) at a path
-- under `tmp`, bottom first, given to `take(i, path)`, which moves or
-- removes it. @return the image's configuration with their diff_ids
local function layer_tars(image, tmp, take)
  local roots = {}
  for part in image.lower:gmatch("[^:]+") do table.insert(roots, 1, part) end -- bottom first
  local diff_ids = {}
  for i, root in ipairs(roots) do
    local copy = tmp .. "/layer-" .. i
    oci_whiteouts(root, copy)
    local archive = tmp .. "/layer.tar"
    fs.run("cannot write layer " .. i, "tar -C %s --numeric-owner --sort=name " .. layers.TAR_KEEP
      .. " --xattrs-exclude='trusted.overlay.*' -cf %s .", copy, archive)
    fs.remove_tree(copy)
    diff_ids[i] = layers.digest_file(archive)
    take(i, archive)
  end
  local text = fs.read_file(image.dir .. "/config.json")
  -- an image without one (from before layers) has its command in its manifest
  local config = text and cjson.decode(text) or { architecture = "amd64", os = "linux", config = image.config }
  config.rootfs = { type = "layers", diff_ids = diff_ids }
  return config
end

--- Save image `name` as the image tagged `tag` (default: its own tag) of a
-- new layout at `dir`: each layer a gzip tar (whiteouts as OCI's), its
-- configuration, an OCI manifest, index.json. Made beside `dir` and
-- renamed to it when complete.
function M.save(name, dir, tag)
  local image = images.get(name)
  if not image then errors.raise(string.format("no image %q", name)) end
  if fs.kind(dir) and (fs.kind(dir) ~= "directory" or fs.dir(dir)() ~= nil) then
    errors.raise(string.format("%s exists and is not empty: save into a new directory", dir))
  end
  tag = tag or name:match(":([%w_][%w_.-]*)$") or "latest"
  local partial = dir .. ".partial-" .. fs.random_hex(4)
  local ok, err = pcall(with_staging, function(tmp)
    errors.try("cannot create " .. partial, fs.mkdir_p(partial .. "/blobs/sha256"))
    local descriptors = {}
    local config = layer_tars(image, tmp, function(i, archive)
      fs.run("cannot compress layer " .. i, "gzip -n < %s > %s", archive, archive .. ".gz")
      os.remove(archive)
      local digest, size = put_blob(partial, archive .. ".gz")
      descriptors[i] = { mediaType = "application/vnd.oci.image.layer.v1.tar+gzip", digest = digest, size = size }
    end)
    fs.write_file(tmp .. "/config.json", cjson.encode(config))
    local config_digest, config_size = put_blob(partial, tmp .. "/config.json")
    fs.write_file(tmp .. "/manifest.json", cjson.encode {
      schemaVersion = 2, mediaType = OCI_MANIFEST, layers = descriptors,
      config = { mediaType = "application/vnd.oci.image.config.v1+json", digest = config_digest, size = config_size } })
    local manifest_digest, manifest_size = put_blob(partial, tmp .. "/manifest.json")
    fs.write_file(partial .. "/index.json", cjson.encode {
      schemaVersion = 2, mediaType = OCI_INDEX,
      manifests = { { mediaType = OCI_MANIFEST, digest = manifest_digest, size = manifest_size,
                      annotations = { [REF_NAME] = tag },
                      platform = { os = config.os or "linux", architecture = config.architecture or "amd64" } } } })
    fs.write_file(partial .. "/oci-layout", '{"imageLayoutVersion":"1.0.0"}')
    if fs.kind(dir) then lfs.rmdir(dir) end
    errors.try("cannot save to " .. dir, os.rename(partial, dir))
  end)
  if not ok then
    fs.remove_tree(partial)
    error(err, 0)
  end
end

--- Save image `name` as a `docker save` archive at `file` (docker load
-- reads it, and `lbox image import docker-archive:`): manifest.json, the
-- configuration as HEX.json, each layer a plain tar at DIFF_ID/layer.tar,
-- repositories. Written beside `file` and renamed to it when complete.
function M.save_docker_archive(name, file)
  local image = images.get(name)
  if not image then errors.raise(string.format("no image %q", name)) end
  if fs.kind(file) then errors.raise(string.format("%s exists: save to a new file", file)) end
  local partial = file .. ".partial-" .. fs.random_hex(4)
  local ok, err = pcall(with_staging, function(tmp)
    local root = tmp .. "/archive"
    errors.try("cannot create a staging directory", fs.mkdir_p(root))
    local paths = {}
    local config = layer_tars(image, tmp, function(i, archive)
      local dir = root .. "/" .. layers.digest_file(archive):sub(8)
      errors.try("cannot write layer " .. i, fs.mkdir_p(dir))
      errors.try("cannot write layer " .. i, os.rename(archive, dir .. "/layer.tar"))
      paths[i] = dir:sub(#root + 2) .. "/layer.tar"
    end)
    fs.write_file(tmp .. "/config.json", cjson.encode(config))
    local config_name = layers.digest_file(tmp .. "/config.json"):sub(8) .. ".json"
    errors.try("cannot write the configuration", os.rename(tmp .. "/config.json", root .. "/" .. config_name))
    -- docker's tags are REPOSITORY:TAG
    local repository, tag = name:match("^(.*):([%w_][%w_.-]*)$")
    repository, tag = repository or name, tag or "latest"
    local manifest = { { Config = config_name, RepoTags = { repository .. ":" .. tag }, Layers = paths } }
    fs.write_file(root .. "/manifest.json", cjson.encode(manifest))
    fs.write_file(root .. "/repositories", cjson.encode { [repository] = { [tag] = paths[#paths]:match("^(%x+)/") } })
    fs.run("cannot save to " .. file, "tar -C %s --numeric-owner --owner=0 --group=0 --sort=name -cf %s .", root,
      partial)
    errors.try("cannot save to " .. file, os.rename(partial, file))
  end)
  if not ok then
    os.remove(partial)
    error(err, 0)
  end
end

return M

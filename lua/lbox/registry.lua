--- Pulling images from a registry speaking the OCI distribution API
-- (docker's registry v2), over curl: manifest lists and OCI indexes (this
-- machine's platform picked), image manifests, gzip, zstd and plain tar
-- layers, Bearer token and Basic authentication (credentials of `lbox
-- login`, mode 0600). Every manifest and blob is checked against its
-- digest before it is used. Blobs download to $LBOX_STORE/downloads, where
-- a pull that died leaves its part to resume from, and become layers
-- (lbox.layers) only when complete and verified; the image is recorded
-- last (lbox.images.record), so a pull that fails records nothing.
local cjson = require "cjson"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local images = require "lbox.images"
local layers = require "lbox.layers"
local lfs = require "lfs"
local store = require "lbox.store"

local M = {}

--- The most a manifest, index or token answer may weigh, in bytes.
M.MAX_DOCUMENT = 4 * 1024 * 1024

local MEDIA = {
  oci_index = "application/vnd.oci.image.index.v1+json",
  docker_list = "application/vnd.docker.distribution.manifest.list.v2+json",
  oci_manifest = "application/vnd.oci.image.manifest.v1+json",
  docker_manifest = "application/vnd.docker.distribution.manifest.v2+json",
}
local ACCEPT = table.concat({ MEDIA.oci_index, MEDIA.docker_list, MEDIA.oci_manifest, MEDIA.docker_manifest }, ", ")

-- The layer media types lbox unpacks, and how it decompresses each.
local LAYER_DECOMPRESSORS = {
  ["application/vnd.oci.image.layer.v1.tar"] = "cat",
  ["application/vnd.oci.image.layer.v1.tar+gzip"] = "gzip -dc",
  ["application/vnd.oci.image.layer.v1.tar+zstd"] = "zstd -dcq",
  ["application/vnd.docker.image.rootfs.diff.tar.gzip"] = "gzip -dc",
}

-- The OCI names of this machine's architecture.
local ARCHITECTURES = { x86_64 = "amd64", aarch64 = "arm64", armv7l = "arm", i686 = "386", ppc64le = "ppc64le",
                        s390x = "s390x", riscv64 = "riscv64" }

--- This machine's platform as OCI names it: "linux", "amd64".
function M.platform()
  local pipe = assert(io.popen("uname -m"))
  local machine = pipe:read("l") or ""
  pipe:close()
  return "linux", ARCHITECTURES[machine] or machine
end

--- Parse a reference `REGISTRY/PATH[:TAG|@DIGEST]`. lbox has no default
-- registry: the first component must name one (a host with a '.' or a
-- port, or localhost).
-- @return { registry, repository, tag | nil, digest | nil, name } | nil, message
function M.parse(reference)
  local bad = function(why) return nil, string.format("invalid reference %q: %s", tostring(reference), why) end
  if type(reference) ~= "string" or reference == "" or #reference > 255 then return bad("empty or too long") end
  local rest, digest = reference:match("^(.-)@(.*)$")
  rest = rest or reference
  if digest and not layers.valid_digest(digest) then return bad("a digest is sha256: and 64 lowercase hex digits") end
  local tag
  local head, last = rest:match("^(.*/)([^/]*)$")
  if last and last:find(":") then
    local name_part
    name_part, tag = last:match("^([^:]*):(.*)$")
    rest = head .. name_part
    if not tag:match("^[%w_][%w_.-]*$") or #tag > 128 then return bad("a tag is letters, digits, '_', '.', '-'") end
  end
  local registry, repository = rest:match("^([^/]+)/(.+)$")
  if not registry or not (registry:find("[.:]") or registry == "localhost") then
    return bad("name the registry (REGISTRY/NAME[:TAG], such as 127.0.0.1:5000/busybox): lbox has no default one")
  end
  if not registry:match("^%w[%w.-]*:?%d*$") then return bad("bad registry host " .. registry) end
  for part in (repository .. "/"):gmatch("([^/]*)/") do
    if not part:match("^[a-z0-9]+[a-z0-9._-]*$") or part:find("[._-][._-][._-]") then
      return bad("a repository is lowercase letters, digits and separators between '/'")
    end
  end
  if not digest and not tag then tag = "latest" end
  local name = registry .. "/" .. repository .. (digest and "@" .. digest or ":" .. tag)
  return { registry = registry, repository = repository, tag = tag, digest = digest, name = name }
end

-- Base64, for Basic credentials.
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function base64(data)
  return (data:gsub("..?.?", function(chunk)
    local a, b, c = chunk:byte(1, 3)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local out = {}
    for i = 1, 4 do
      out[i] = B64:sub(((n >> (6 * (4 - i))) & 63) + 1, ((n >> (6 * (4 - i))) & 63) + 1)
    end
    if not b then out[3], out[4] = "=", "=" elseif not c then out[4] = "=" end
    return table.concat(out)
  end))
end

local function unbase64(text)
  local bits = text:gsub("[^%w+/]", ""):gsub(".", function(ch)
    local n = B64:find(ch, 1, true) - 1
    local s = ""
    for i = 5, 0, -1 do s = s .. ((n >> i) & 1) end
    return s
  end)
  -- the bits of the padding are no byte
  bits = bits:sub(1, #bits - #bits % 8)
  return (bits:gsub("%d%d%d%d%d%d%d%d", function(byte) return string.char(tonumber(byte, 2)) end))
end

local function auth_file()
  return store.root() .. "/auth.json"
end

local function read_auths()
  local ok, value = pcall(cjson.decode, fs.read_file(auth_file()) or "")
  return ok and type(value) == "table" and type(value.auths) == "table" and value or { auths = {} }
end

-- Write `data` to `path`, mode 0600 from its creation on.
local function write_secret(path, data)
  local partial = path .. ".partial"
  os.remove(partial)
  local fd = errors.try("cannot write " .. path, core.open(partial, "create"))
  local ok, msg = core.write(fd, data)
  core.close(fd)
  if not ok then errors.raise("cannot write " .. path .. ": " .. tostring(msg)) end
  errors.try("cannot write " .. path, os.rename(partial, path))
end

--- The user and password `lbox login` stored for `registry` | nil
function M.credentials(registry)
  local entry = read_auths().auths[registry]
  if type(entry) ~= "table" or type(entry.auth) ~= "string" then return nil end
  local user, password = unbase64(entry.auth):match("^([^:]*):(.*)$")
  return user, password
end

local function store_credentials(registry, user, password)
  local auths = read_auths()
  auths.auths[registry] = user and { auth = base64(user .. ":" .. password) } or nil
  errors.try("cannot create the store", fs.mkdir_p(store.root()))
  write_secret(auth_file(), cjson.encode(auths))
end

-- A session with one registry: its base URL, the credentials to use, the
-- token or Basic header that answered its last challenge, and a staging
-- directory for responses (and curl's configuration, which carries the
-- header: never on a command line).
local Session = {}
Session.__index = Session

local function session(registry, insecure, tmp, progress)
  return setmetatable({ registry = registry, base = (insecure and "http://" or "https://") .. registry,
                        insecure = insecure, tmp = tmp, progress = progress, calls = 0 }, Session)
end

local function parse_headers(path)
  local text = fs.read_file(path) or ""
  -- after redirects, the last response's headers are the ones that count
  local last = text
  for block in text:gmatch("HTTP/[^\r\n]*\r?\n.-\r?\n\r?\n") do last = block end
  local headers = {}
  for name, value in last:gmatch("([%w-]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  return headers
end

-- Run curl on `url`. opts: headers (list), output (file; else the body is
-- returned), resume (continue `output`), method, upload. @return status, headers, body
function Session:curl(url, opts)
  self.calls = self.calls + 1
  local config = string.format("%s/curl-%d.conf", self.tmp, self.calls)
  local header_file = string.format("%s/headers-%d", self.tmp, self.calls)
  local output = opts.output or string.format("%s/body-%d", self.tmp, self.calls)
  local lines = { "url = " .. cjson.encode(url), "output = " .. cjson.encode(output),
                  "dump-header = " .. cjson.encode(header_file) }
  -- a manifest or a token is small: a registry answering more is broken
  if not opts.output then lines[#lines + 1] = "max-filesize = " .. M.MAX_DOCUMENT end
  -- nor is a blob bigger than its descriptor says
  if opts.max_size then lines[#lines + 1] = "max-filesize = " .. opts.max_size end
  for _, h in ipairs(opts.headers or {}) do lines[#lines + 1] = "header = " .. cjson.encode(h) end
  if self.auth then lines[#lines + 1] = "header = " .. cjson.encode("Authorization: " .. self.auth) end
  write_secret(config, table.concat(lines, "\n") .. "\n")
  -- only http(s), also after redirects; a stalled transfer (under a
  -- byte a second for a minute) fails rather than hangs
  local command = string.format("curl -L --proto =http,https --proto-redir =http,https --connect-timeout 30 "
    .. "--speed-limit 1 --speed-time 60 -w '%%{http_code}' %s %s -K %s 2>%s",
    opts.resume and "-C -" or "", opts.progress and "" or "-sS", fs.quote(config),
    opts.progress and "/dev/stderr" or fs.quote(header_file .. ".err"))
  local pipe = assert(io.popen(command))
  local code_text = pipe:read("a")
  local _, _, exit = pipe:close()
  os.remove(config)
  local status = tonumber(code_text:match("(%d+)$") or "")
  -- curl failed (a transfer cut, a size exceeded), but for a resume the
  -- server could not do (33), which the caller handles
  local failed = exit ~= 0 and not (opts.resume and exit == 33)
  if not status or status == 0 or failed then
    local why = (fs.read_file(header_file .. ".err") or ""):match("curl: %(%d+%) ([^\n]*)")
      or (exit == 63 and "Maximum file size exceeded") or ("curl exit " .. tostring(exit))
    return nil, why
  end
  local body
  if not opts.output then body = fs.read_file(output) or ""; os.remove(output) end
  local headers = parse_headers(header_file)
  os.remove(header_file)
  os.remove(header_file .. ".err")
  return status, headers, body, exit
end

local function url_encode(s)
  return (s:gsub("[^%w%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- Answer the challenge `header` (a 401's WWW-Authenticate) for `scope`:
-- Bearer gets a token from its realm (with the stored credentials, if
-- any), Basic the credentials themselves.
function Session:authenticate(header, scope)
  local scheme, params = (header or ""):match("^(%a+)%s+(.*)$")
  scheme = scheme and scheme:lower()
  local user, password = self.user, self.password
  if not user then user, password = M.credentials(self.registry) end
  if scheme == "basic" then
    if not user then errors.raise(self.registry .. " wants a user and password: lbox login " .. self.registry) end
    self.auth = "Basic " .. base64(user .. ":" .. password)
    return
  end
  if scheme ~= "bearer" then
    errors.raise(string.format("%s asks for an authentication lbox does not speak: %s", self.registry, tostring(header)))
  end
  local fields = {}
  for key, value in params:gmatch('(%w+)="([^"]*)"') do fields[key] = value end
  local realm = fields.realm
  if not realm or not realm:match("^https?://") then errors.raise(self.registry .. " gave no token realm to ask") end
  if realm:match("^http://") and not self.insecure then
    errors.raise(string.format("%s's token realm %s is plain HTTP: refused (--insecure allows it)", self.registry, realm))
  end
  local query = {}
  if fields.service then query[#query + 1] = "service=" .. url_encode(fields.service) end
  scope = fields.scope or scope
  if scope then query[#query + 1] = "scope=" .. url_encode(scope) end
  local url = realm .. (#query > 0 and (realm:find("?", 1, true) and "&" or "?") .. table.concat(query, "&") or "")
  self.auth = user and "Basic " .. base64(user .. ":" .. password) or nil
  local status, _, body = self:curl(url, {})
  self.auth = nil
  if status == 401 or status == 403 then
    errors.raise(string.format("%s refused %s: %s", realm, user and "the credentials of user " .. user or "an anonymous token",
      user and "check them (lbox login " .. self.registry .. ")" or "log in first (lbox login " .. self.registry .. ")"))
  end
  if status ~= 200 then errors.raise(string.format("cannot get a token from %s: %s", realm, tostring(status or _))) end
  local ok, answer = pcall(cjson.decode, body)
  local token = ok and type(answer) == "table" and (answer.token or answer.access_token)
  if type(token) ~= "string" or token == "" or token:find("[%c]") then
    errors.raise("the token server " .. realm .. " answered garbage")
  end
  self.auth = "Bearer " .. token
end

-- Raise the user error of a request for `path` that curl gave up on.
function Session:failed(path, why)
  if why:find("Maximum file size exceeded", 1, true) then
    errors.raise(string.format("%s sent more for %s than it may (its manifest's size, or %d bytes for a document): "
      .. "refused", self.registry, path, M.MAX_DOCUMENT))
  end
  errors.raise(string.format("cannot reach %s: %s", self.registry, why))
end

-- GET `path` of the registry; on a 401, answer the challenge once and
-- ask again. @return status, headers, body
function Session:get(path, opts, scope)
  local status, headers, body = self:curl(self.base .. path, opts)
  if not status then self:failed(path, headers) end
  if status == 401 then
    self:authenticate(headers["www-authenticate"], scope)
    status, headers, body = self:curl(self.base .. path, opts)
    if not status then self:failed(path, headers) end
    if status == 401 then errors.raise(self.registry .. " refused the credentials: lbox login " .. self.registry) end
  end
  return status, headers, body
end

local function digest_of(tmp, data)
  local path = tmp .. "/digest-" .. fs.random_hex(4)
  fs.write_file(path, data)
  local digest = layers.digest_file(path)
  os.remove(path)
  return digest
end

function M.decode(what, text)
  local ok, value = pcall(cjson.decode, text)
  if not ok or type(value) ~= "table" then errors.raise(what .. " is not JSON") end
  return value
end

-- The manifest `ref` (a tag or digest) of the reference `r`, checked
-- against its digest. @return manifest (table), digest
function Session:manifest(r, ref)
  local status, headers, body = self:get(string.format("/v2/%s/manifests/%s", r.repository, ref),
    { headers = { "Accept: " .. ACCEPT } }, "repository:" .. r.repository .. ":pull")
  if status == 404 then errors.raise(string.format("%s: no such image (manifest unknown)", r.name)) end
  if status ~= 200 then errors.raise(string.format("%s: the registry answered %d for its manifest", r.name, status)) end
  local digest = digest_of(self.tmp, body)
  local expected = ref:match("^sha256:") and ref or headers["docker-content-digest"]
  if expected and expected ~= digest then
    errors.raise(string.format("%s: the manifest has digest %s, not %s: refused", r.name, digest, expected))
  end
  return M.decode(r.name .. ": its manifest", body), digest
end

local function file_size(path)
  return lfs.attributes(path, "size") or 0
end

local function partial_path(digest)
  return store.root() .. "/downloads/" .. digest:sub(8) .. ".partial"
end

-- Download blob `digest` of size `size` into the downloads, resuming what a
-- pull before left, and check it. @return its path (a verified file)
function Session:blob(r, digest, size, what)
  errors.try("cannot create the downloads", fs.mkdir_p(store.root() .. "/downloads"))
  local partial = partial_path(digest)
  local have = fs.kind(partial) and file_size(partial) or 0
  if self.progress_lines then
    io.stderr:write(string.format("%s %s: %s%d bytes\n", what, digest:sub(8, 19),
      have > 0 and string.format("resuming at %d of ", have) or "", size or -1))
  end
  local path = string.format("/v2/%s/blobs/%s", r.repository, digest)
  local scope = "repository:" .. r.repository .. ":pull"
  local max_size = type(size) == "number" and math.tointeger(size)
  if max_size and max_size <= 0 then max_size = nil end
  local status, _, _, exit = self:get(path, { output = partial, resume = have > 0, progress = self.progress,
                                              max_size = max_size }, scope)
  if have > 0 and (status == 416 or exit == 33 or status == 200 and file_size(partial) ~= size) then
    -- the part was whole already, or the registry cannot resume: from the start
    if layers.digest_file(partial) ~= digest then
      os.remove(partial)
      status = self:get(path, { output = partial, progress = self.progress, max_size = max_size }, scope)
    else
      status = 200
    end
  end
  if status ~= 200 and status ~= 206 then
    os.remove(partial)
    errors.raise(string.format("%s: the registry answered %s for %s %s", r.name, tostring(status), what, digest))
  end
  local got = layers.digest_file(partial)
  if got ~= digest then
    os.remove(partial) -- never resume from bytes that are wrong
    errors.raise(string.format("%s: %s %s arrived with digest %s: refused, nothing stored", r.name, what, digest, got))
  end
  return partial
end
--- The entry for this machine's platform in an index or manifest list `index` of image `r.name`.
function M.pick_platform(r, index)
  local os_name, architecture = M.platform()
  local seen = {}
  for _, entry in ipairs(index.manifests or {}) do
    local p = type(entry) == "table" and entry.platform or {}
    if p.os == os_name and p.architecture == architecture and layers.valid_digest(entry.digest) then return entry end
    seen[#seen + 1] = tostring(p.os) .. "/" .. tostring(p.architecture)
  end
  errors.raise(string.format("%s has no image for %s/%s (it has: %s)", r.name, os_name, architecture,
    #seen > 0 and table.concat(seen, ", ") or "none"))
end

local function check_descriptor(r, what, d)
  if type(d) ~= "table" or not layers.valid_digest(d.digest) then
    errors.raise(string.format("%s: its manifest has a bad %s descriptor", r.name, what))
  end
end

--- Store the image of `manifest` (an image manifest, OCI's or docker's
-- schema 2, of digest `digest`) from `source` (a registry session, or an
-- OCI layout: anything with blob(r, digest, size, what), which returns the
-- path of the blob checked against its digest, and `keep_blobs` when that
-- path is not to be removed) as image `r.name`: its config, then each
-- layer the store lacks, decompressed in `tmp`, checked against its
-- diff_id and entry by entry, unpacked. opts: replace (an image of that
-- name), source (what the record names). @return the image
function M.install(source, r, manifest, digest, tmp, opts)
  if manifest.schemaVersion ~= 2 or type(manifest.layers) ~= "table" then
    errors.raise(string.format("%s: not an image manifest lbox reads (schema 2, OCI or docker)", r.name))
  end
  local current = images.get(r.name)
  if opts.replace and current and current.manifest.digest == digest then return current end
  check_descriptor(r, "config", manifest.config)
  local config_path = source:blob(r, manifest.config.digest, manifest.config.size, "config")
  local config = M.decode(r.name .. ": its configuration", fs.read_file(config_path))
  if not source.keep_blobs then os.remove(config_path) end
  local diff_ids = type(config.rootfs) == "table" and config.rootfs.diff_ids
  if type(diff_ids) ~= "table" or #diff_ids ~= #manifest.layers then
    errors.raise(string.format("%s: its configuration does not list one diff_id per layer", r.name))
  end
  for i, layer in ipairs(manifest.layers) do
    check_descriptor(r, "layer", layer)
    local decompress = LAYER_DECOMPRESSORS[layer.mediaType]
    if not decompress then
      errors.raise(string.format("%s: layer %d has a media type lbox does not unpack: %s", r.name, i,
        tostring(layer.mediaType)))
    end
    if not layers.valid_digest(diff_ids[i]) then errors.raise(string.format("%s: bad diff_id of layer %d", r.name, i)) end
    local what = string.format("layer %d/%d", i, #manifest.layers)
    if layers.root(diff_ids[i]) then
      if source.progress_lines then
        io.stderr:write(string.format("%s %s: already in the store\n", what, layer.digest:sub(8, 19)))
      end
    else
      local blob = source:blob(r, layer.digest, layer.size, what)
      local archive = tmp .. "/layer.tar"
      fs.run(string.format("cannot decompress %s of %s", what, r.name), decompress .. " < %s > %s", blob, archive)
      layers.add(archive, string.format("%s of %s", what, r.name), diff_ids[i])
      os.remove(archive)
      if not source.keep_blobs then os.remove(blob) end
    end
  end
  local image = images.record(r.name, diff_ids, config, { source = opts.source or r.name, digest = digest,
    replace = opts.replace })
  if source.progress_lines then io.stderr:write(string.format("%s: %s\n", r.name, digest)) end
  return image
end

--- Pull `reference` (REGISTRY/NAME[:TAG|@DIGEST]) into the store as an
-- image of that name (a newer pull of a tag replaces the image it named).
-- opts: insecure (plain HTTP), quiet (no progress lines on stderr),
-- progress (curl's meter too: bytes, rate; on a terminal). @return the image (lbox.images.get)
function M.pull(reference, opts)
  opts = opts or {}
  local r, msg = M.parse(reference)
  if not r then errors.raise(msg) end
  return store.with_staging("pull", function(tmp)
    local s = session(r.registry, opts.insecure, tmp, opts.progress)
    s.progress_lines = not opts.quiet
    local manifest, digest = s:manifest(r, r.digest or r.tag)
    if manifest.manifests then -- an OCI index or a docker manifest list
      local entry = M.pick_platform(r, manifest)
      manifest, digest = s:manifest(r, entry.digest)
    end
    return M.install(s, r, manifest, digest, tmp, { replace = true })
  end)
end

--- Check `user` and `password` with `registry` (its /v2/ answering them)
-- and store them for pulls, mode 0600.
function M.login(registry, user, password, opts)
  if not registry:match("^[%w.-]+:?%d*$") then errors.raise(string.format("invalid registry %q", registry)) end
  store.with_staging("login", function(tmp)
    local s = session(registry, opts and opts.insecure, tmp)
    s.user, s.password = user, password
    local status = s:get("/v2/", {})
    if status ~= 200 then errors.raise(string.format("%s answered %d to the credentials", registry, status)) end
  end)
  store_credentials(registry, user, password)
end

--- Forget the credentials of `registry`. @return whether there were any
function M.logout(registry)
  if not M.credentials(registry) then return false end
  store_credentials(registry, nil)
  return true
end

return M

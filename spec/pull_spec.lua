-- lbox pull against a real registry on this machine: Debian's
-- docker-registry, serving on 127.0.0.1 only (a high port), with a config
-- and storage of the spec's own under the spec store, filled offline
-- through the registry's HTTP API with images built here: the busybox
-- layer, a three-layer image (gzip, plain tar, zstd) with whiteouts and an
-- opaque directory, a multi-platform index. No traffic goes anywhere but
-- 127.0.0.1. Each test ends with the leak check (layers and downloads too).
local core = require "lbox.core"
local helper = require "helper"
local lfs = require "lfs"

local STORE = helper.store
local REGISTRY_DIR = STORE .. "/spec-registry"
local BUILD = REGISTRY_DIR .. "/build"

local function sh(script)
  local r = helper.sh(script)
  assert.are.equal(0, r.code, script .. ": " .. r.err)
  return r.out
end

local function sha256(path)
  return "sha256:" .. sh("sha256sum < " .. path):match("^(%x+)")
end

local function size(path)
  return lfs.attributes(path, "size")
end

-- The registry: started for each test (the leak check ends every child
-- process), over the same storage.
local registry = {}

-- The user and password of the registry with authentication, and the
-- password's bcrypt hash (docker-registry's htpasswd takes bcrypt only).
local USER, PASSWORD = "lbox", "secret"
local HTPASSWD = "lbox:$2b$12$rrDzlFyzHw0mPkjpllf3kOYgTpkA.IJaWCMhvOBzfjgmlT2zI4Z/q\n"

-- busybox httpd serving the directory `www` on 127.0.0.1 (with the
-- configuration file `conf`). @return its process, its host:port
local function start_httpd(www, conf)
  for _ = 1, 10 do
    local port = 40000 + math.random(0, 19999)
    local proc = helper.start { "/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:" .. port, "-h", www,
                                "-c", conf }
    local url = "http://127.0.0.1:" .. port .. "/"
    if helper.eventually(function()
      return core.waitpid(proc.pid, "nohang") ~= 0 or helper.sh("curl -s -o /dev/null " .. url).code == 0
    end, 10) and helper.sh("curl -s -o /dev/null " .. url).code == 0 then
      return proc, "127.0.0.1:" .. port
    end
    pcall(core.kill, proc.pid, core.SIGKILL)
    pcall(helper.finish, proc, 10)
  end
  error("busybox httpd did not start")
end

-- A token server for the registry: busybox httpd on 127.0.0.1, serving
-- (to USER and PASSWORD only, Basic) a token lbox's pull must present: a
-- JWT for pulls of lbox/busybox, signed (RS256) with a key whose
-- self-signed certificate the registry trusts (its rootcertbundle).
-- @return its process, its realm URL
local function start_token_server()
  local dir = REGISTRY_DIR .. "/token"
  sh("rm -rf " .. dir .. " && mkdir -p " .. dir .. "/www && cd " .. dir .. " && "
    .. "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=lbox-spec "
    .. "2>/dev/null && b64u() { openssl base64 -A | tr '+/' '-_' | tr -d '='; } && "
    .. "x5c=$(openssl x509 -in cert.pem -outform DER | openssl base64 -A) && now=$(date +%s) && "
    .. [[h=$(printf '{"alg":"RS256","typ":"JWT","x5c":["%s"]}' "$x5c" | b64u) && ]]
    .. [[c=$(printf '{"iss":"lbox-spec","sub":"lbox","aud":"lbox-registry","exp":%d,"nbf":%d,"iat":%d,]]
    .. [["jti":"lbox-spec","access":[{"type":"repository","name":"lbox/busybox","actions":["pull"]}]}' ]]
    .. [[$((now + 3600)) $((now - 60)) $((now - 60)) | b64u) && ]]
    .. [[s=$(printf '%s.%s' "$h" "$c" | openssl dgst -sha256 -sign key.pem | b64u) && ]]
    .. [[printf '{"token":"%s.%s.%s"}' "$h" "$c" "$s" > www/token]])
  helper.write_file(dir .. "/httpd.conf", "/:" .. USER .. ":" .. PASSWORD .. "\n")
  local proc, host = start_httpd(dir .. "/www", dir .. "/httpd.conf")
  return proc, "http://" .. host .. "/token"
end

-- With `auth` "basic", the registry asks for USER and PASSWORD; with
-- "token", for a token of the token server above.
function registry.start(auth)
  local realm
  if auth == "token" then registry.token_proc, realm = start_token_server() end
  for _ = 1, 10 do
    local port = 40000 + math.random(0, 19999)
    helper.write_file(REGISTRY_DIR .. "/htpasswd", HTPASSWD)
    helper.write_file(REGISTRY_DIR .. "/config.yml", table.concat({
      "version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
      "storage:", "  filesystem:", "    rootdirectory: " .. REGISTRY_DIR .. "/storage",
      "http:", "  addr: 127.0.0.1:" .. port,
      auth == "basic" and "auth:\n  htpasswd:\n    realm: lbox-spec\n    path: " .. REGISTRY_DIR .. "/htpasswd" or "",
      auth == "token" and "auth:\n  token:\n    realm: " .. realm .. "\n    service: lbox-registry\n"
        .. "    issuer: lbox-spec\n    rootcertbundle: " .. REGISTRY_DIR .. "/token/cert.pem" or "",
      "" }, "\n"))
    local proc = helper.start { "/usr/bin/docker-registry", "serve", REGISTRY_DIR .. "/config.yml" }
    local url = "http://127.0.0.1:" .. port
    local up = helper.eventually(function()
      if core.waitpid(proc.pid, "nohang") ~= 0 then return true end -- it ended: the port was taken
      return helper.sh("curl -s -o /dev/null " .. url .. "/v2/").code == 0
    end, 30)
    if up and helper.sh("curl -s -o /dev/null " .. url .. "/v2/").code == 0 then
      registry.proc, registry.host, registry.url = proc, "127.0.0.1:" .. port, url
      return
    end
    pcall(core.kill, proc.pid, core.SIGKILL)
    pcall(helper.finish, proc, 10)
  end
  error("docker-registry did not start")
end

function registry.stop()
  for _, field in ipairs { "proc", "token_proc" } do
    if registry[field] then
      core.kill(registry[field].pid, core.SIGTERM)
      helper.finish(registry[field], 30)
      registry[field] = nil
    end
  end
end

-- Upload the file `path` as a blob of `repository`. @return its digest
function registry.push_blob(repository, path)
  local digest = sha256(path)
  local location = sh("curl -sS -f -X POST -D - -o /dev/null " .. registry.url .. "/v2/" .. repository
    .. "/blobs/uploads/"):match("\n[Ll]ocation: ([^\r\n]+)")
  assert.is_truthy(location, "no upload location")
  if location:sub(1, 1) == "/" then location = registry.url .. location end
  location = location .. (location:find("?", 1, true) and "&" or "?") .. "digest=" .. digest
  sh("curl -sS -f -X PUT -H 'Content-Type: application/octet-stream' --data-binary @" .. path .. " '"
    .. location .. "' -o /dev/null")
  return digest
end

-- Upload the JSON text `json` as manifest `ref` of `repository`. @return its digest
function registry.push_manifest(repository, ref, media_type, json)
  local path = BUILD .. "/manifest-" .. repository:gsub("/", "-") .. "-" .. ref:gsub(":", "-")
  helper.write_file(path, json)
  sh("curl -sS -f -X PUT -H 'Content-Type: " .. media_type .. "' --data-binary @" .. path .. " "
    .. registry.url .. "/v2/" .. repository .. "/manifests/" .. ref .. " -o /dev/null")
  return sha256(path)
end

-- Where the registry keeps blob `digest`.
local function stored_blob(digest)
  return string.format("%s/storage/docker/registry/v2/blobs/sha256/%s/%s/data", REGISTRY_DIR, digest:sub(8, 9),
    digest:sub(8))
end

local OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
local OCI_INDEX = "application/vnd.oci.image.index.v1+json"
local LAYER_TYPES = { gz = "application/vnd.oci.image.layer.v1.tar+gzip", tar = "application/vnd.oci.image.layer.v1.tar",
                      zst = "application/vnd.oci.image.layer.v1.tar+zstd" }

-- Push an image of the tarballs `tars` (uncompressed, bottom first), each
-- compressed as `kinds` says, with `config` (its "config" part).
-- @return { digest = manifest digest, layers = blob digests, diff_ids }
local DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
local DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"

local function push_image(repository, ref, tars, kinds, config, architecture, docker)
  local cjson = require "cjson"
  local diff_ids, layers = {}, {}
  for i, tar in ipairs(tars) do
    diff_ids[i] = sha256(tar)
    local blob = tar
    if kinds[i] == "gz" then
      blob = tar .. ".gz"
      sh("gzip -nc " .. tar .. " > " .. blob)
    elseif kinds[i] == "zst" then
      blob = tar .. ".zst"
      sh("zstd -qf " .. tar .. " -o " .. blob)
    end
    layers[i] = { mediaType = docker and "application/vnd.docker.image.rootfs.diff.tar.gzip" or LAYER_TYPES[kinds[i]],
                  digest = registry.push_blob(repository, blob), size = size(blob),
                  path = blob }
  end
  local config_path = BUILD .. "/config-" .. repository:gsub("/", "-") .. "-" .. ref
  helper.write_file(config_path, cjson.encode { architecture = architecture or "amd64", os = "linux",
    config = config, rootfs = { type = "layers", diff_ids = diff_ids } })
  local config_digest = registry.push_blob(repository, config_path)
  local descriptors = {}
  for i, l in ipairs(layers) do descriptors[i] = { mediaType = l.mediaType, digest = l.digest, size = l.size } end
  local media_type = docker and DOCKER_MANIFEST or OCI_MANIFEST
  local digest = registry.push_manifest(repository, ref, media_type, cjson.encode {
    schemaVersion = 2, mediaType = media_type,
    config = { mediaType = docker and "application/vnd.docker.container.image.v1+json"
               or "application/vnd.oci.image.config.v1+json", digest = config_digest, size = size(config_path) },
    layers = descriptors })
  return { digest = digest, layers = layers, diff_ids = diff_ids, size = size(BUILD .. "/manifest-"
    .. repository:gsub("/", "-") .. "-" .. ref:gsub(":", "-")) }
end

local pushed = {}

local function fill_registry()
  sh("rm -rf " .. REGISTRY_DIR .. " && mkdir -p " .. BUILD)
  -- the busybox image's tree, as the built-in image makes it
  assert.are.equal(0, helper.lbox_run({ "run", "busybox", "true" }).code)
  local busybox_root = STORE .. "/images/busybox/rootfs"
  sh("tar -C " .. busybox_root .. "/ --numeric-owner --sort=name --mtime=@0 -cf " .. BUILD .. "/busybox.tar .")
  -- layer 2: /data with two files, a file to whiteout later
  sh("cd " .. BUILD .. " && mkdir -p l2/data l2/etc && echo old1 > l2/data/old1 && echo old2 > l2/data/old2 && "
    .. "echo two > l2/etc/layer && tar -C l2 --numeric-owner --sort=name --mtime=@0 -cf data.tar .")
  -- layer 3: /data opaque with a new file, /bin/ls whited out, /etc/layer replaced
  sh("cd " .. BUILD .. " && mkdir -p l3/data l3/bin l3/etc && touch l3/data/.wh..wh..opq l3/bin/.wh.ls && "
    .. "echo new > l3/data/new && echo three > l3/etc/layer && "
    .. "tar -C l3 --numeric-owner --sort=name --mtime=@0 -cf whiteouts.tar .")
  registry.start()
  pushed.busybox = push_image("lbox/busybox", "latest", { BUILD .. "/busybox.tar" }, { "gz" }, {
    Entrypoint = { "/bin/sh", "-c" }, Cmd = { "echo default $GREETING from $(pwd) as $(id -u)" },
    Env = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin", "GREETING=hello" }, WorkingDir = "/srv/app",
    User = "65534", Labels = { ["org.lbox.spec"] = "busybox" } })
  pushed.layered = push_image("lbox/layered", "v1",
    { BUILD .. "/busybox.tar", BUILD .. "/data.tar", BUILD .. "/whiteouts.tar" }, { "gz", "tar", "zst" },
    { Cmd = { "sh" } })
  -- a multi-platform index: arm64 first, then this machine's amd64
  local cjson = require "cjson"
  local arm = push_image("lbox/multi", "arm64", { BUILD .. "/busybox.tar" }, { "gz" },
    { Cmd = { "sh" }, Labels = { arch = "arm64" } }, "arm64")
  local amd = push_image("lbox/multi", "amd64", { BUILD .. "/busybox.tar" }, { "gz" },
    { Cmd = { "sh" }, Labels = { arch = "amd64" } })
  local function entry(image, architecture)
    return { mediaType = OCI_MANIFEST, digest = image.digest, size = image.size,
             platform = { os = "linux", architecture = architecture } }
  end
  pushed.multi = registry.push_manifest("lbox/multi", "latest", OCI_INDEX, cjson.encode {
    schemaVersion = 2, mediaType = OCI_INDEX, manifests = { entry(arm, "arm64"), entry(amd, "amd64") } })
  registry.push_manifest("lbox/multi", "armonly", OCI_INDEX, cjson.encode {
    schemaVersion = 2, mediaType = OCI_INDEX, manifests = { entry(arm, "arm64") } })
  -- docker's formats: a manifest list of a schema 2 manifest
  local docker = push_image("lbox/docker", "amd64", { BUILD .. "/busybox.tar" }, { "gz" },
    { Cmd = { "echo", "docker's format" } }, "amd64", true)
  registry.push_manifest("lbox/docker", "latest", DOCKER_LIST, cjson.encode {
    schemaVersion = 2, mediaType = DOCKER_LIST, manifests = { {
      mediaType = DOCKER_MANIFEST, digest = docker.digest, size = docker.size,
      platform = { os = "linux", architecture = "amd64" } } } })
  -- an image whose layer the registry will serve corrupted
  sh("cd " .. BUILD .. " && mkdir -p l4 && echo unique > l4/corrupt-me && tar -C l4 -cf corrupt.tar .")
  pushed.corrupt = push_image("lbox/corrupt", "latest", { BUILD .. "/busybox.tar", BUILD .. "/corrupt.tar" },
    { "gz", "gz" }, { Cmd = { "sh" } })
  registry.stop()
end

local function pull(reference)
  return helper.lbox_run { "pull", "--insecure", registry.host .. "/" .. reference }
end

local function layer_count()
  local n = 0
  for name in lfs.dir(STORE .. "/layers/sha256") do if name:match("^%x+$") then n = n + 1 end end
  return n
end

describe("lbox pull", function()
  local before
  setup(fill_registry)
  teardown(function()
    registry.stop()
    sh("rm -rf " .. REGISTRY_DIR)
  end)
  before_each(function()
    registry.start()
    before = helper.snapshot()
  end)
  after_each(function()
    registry.stop()
    helper.assert_no_leaks(before)
  end)

  it("pulls an image, runs it with its configuration, and removes it", function()
    local r = pull("lbox/busybox")
    local name = registry.host .. "/lbox/busybox:latest"
    assert.are.same({ 0, name .. "\n" }, { r.code, r.out }, r.err)
    -- plain progress lines without a terminal
    assert.matches("layer 1/1 %x+: %d+ bytes\n", r.err)
    local ls = helper.lbox_run { "image", "ls" }
    assert.matches("\n" .. (registry.host .. "/lbox/busybox"):gsub("%p", "%%%0") .. " +latest +%x+ +[%d.]+[kM]B ", ls.out)
    -- Entrypoint + Cmd, Env, WorkingDir, User
    local run = helper.lbox_run { "run", name }
    assert.are.same({ 0, "default hello from /srv/app as 65534\n" }, { run.code, run.out }, run.err)
    -- arguments replace Cmd and follow the Entrypoint; -e, -w, -u win
    run = helper.lbox_run { "run", "-e", "GREETING=hi", "-w", "/tmp", "-u", "0",
      registry.host .. "/lbox/busybox", "echo $GREETING $PATH $(pwd) $(id -u)" }
    assert.are.same({ 0, "hi /usr/sbin:/usr/bin:/sbin:/bin:/opt/bin /tmp 0\n" }, { run.code, run.out }, run.err)
    -- --entrypoint replaces it and drops Cmd
    run = helper.lbox_run { "run", "--entrypoint", "echo", name, "plain", "words" }
    assert.are.same({ 0, "plain words\n" }, { run.code, run.out }, run.err)
    -- Labels in inspect
    local d = helper.lbox_run { "run", "-d", name, "true" }
    assert.are.equal(0, d.code, d.err)
    local id = d.out:match("^(%x+)\n$")
    assert.is_true(helper.eventually(function()
      return helper.lbox_run({ "ps", "-a" }).out:find(id:sub(1, 12) .. ".*Exited %(0%)") ~= nil
    end))
    assert.matches('"labels":{"org.lbox.spec":"busybox"}', helper.lbox_run({ "inspect", id }).out)
    assert.are.equal(0, helper.lbox_run({ "rm", id }).code)
    -- image inspect: the record and the configuration
    local inspect = helper.lbox_run { "image", "inspect", name }
    assert.are.equal(0, inspect.code, inspect.err)
    local record = require("cjson").decode(inspect.out)[1]
    assert.are.same({ name, pushed.busybox.digest, "65534", "/srv/app" },
      { record.name, record.digest, record.config.config.User, record.config.config.WorkingDir })
    -- another name for the same image: removing it is no use of the layers
    local d2 = helper.lbox_run { "run", "-d", name, "sleep 600" }
    assert.are.equal(0, d2.code, d2.err)
    local by_digest = registry.host .. "/lbox/busybox@" .. pushed.busybox.digest
    assert.are.equal(0, helper.lbox_run({ "pull", "--insecure", by_digest }).code)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", by_digest }).code)
    assert.are.equal(125, helper.lbox_run({ "image", "rm", name }).code)
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", d2.out:match("^(%x+)") }).code)
    -- pulled again: nothing downloaded
    local again = pull("lbox/busybox")
    assert.are.equal(0, again.code, again.err)
    assert.is_nil(again.err:find("bytes"), again.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", name }).code)
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find("lbox/busybox", 1, true))
  end)

  it("pulls a three-layer image (gzip, tar, zstd) with whiteouts, sharing its base layer", function()
    local layers_before = layer_count()
    local r = pull("lbox/layered:v1")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(layers_before + 3, layer_count())
    -- whiteouts as overlayfs's, in the layer store
    local top = STORE .. "/layers/sha256/" .. pushed.layered.diff_ids[3]:sub(8) .. "/root"
    assert.are.equal("character special file 0,0\n", sh("stat -c '%F %Hr,%Lr' " .. top .. "/bin/ls"))
    assert.are.equal("y", sh("getfattr --only-values -n trusted.overlay.opaque " .. top .. "/data"))
    assert.is_nil(lfs.attributes(top .. "/data/.wh..wh..opq"))
    local run = helper.lbox_run { "run", registry.host .. "/lbox/layered:v1", "sh", "-c",
      "ls /data; cat /etc/layer; test -e /bin/ls || echo ls is gone; grep -c ' / .*lowerdir=.*:.*:' /proc/self/mountinfo" }
    assert.are.same({ 0, "new\nthree\nls is gone\n1\n" }, { run.code, run.out }, run.err)
    -- the base layer is shared: pulling busybox adds none
    local b = pull("lbox/busybox")
    assert.are.equal(0, b.code, b.err)
    assert.matches("already in the store", b.err)
    assert.are.equal(layers_before + 3, layer_count())
    -- removing one keeps the layer the other uses
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/layered:v1" }).code)
    assert.are.equal(layers_before + 1, layer_count())
    run = helper.lbox_run { "run", registry.host .. "/lbox/busybox", "echo ok" }
    assert.are.same({ 0, "ok\n" }, { run.code, run.out }, run.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/busybox" }).code)
    assert.are.equal(layers_before, layer_count())
  end)

  it("picks this machine's platform from an OCI index or a docker manifest list, and refuses an index without it",
    function()
    local r = pull("lbox/multi")
    assert.are.equal(0, r.code, r.err)
    local name = registry.host .. "/lbox/multi:latest"
    local d = helper.lbox_run { "run", "-d", name, "true" }
    assert.are.equal(0, d.code, d.err)
    local id = d.out:match("^(%x+)\n$")
    assert.is_true(helper.eventually(function()
      return helper.lbox_run({ "ps", "-a" }).out:find(id:sub(1, 12) .. ".*Exited %(0%)") ~= nil
    end))
    assert.matches('"labels":{"arch":"amd64"}', helper.lbox_run({ "inspect", id }).out)
    -- in use: refused; once the container goes, removed
    local rm = helper.lbox_run { "image", "rm", name }
    assert.are.equal(125, rm.code)
    assert.matches("is used by container " .. id:sub(1, 12), rm.err)
    assert.are.equal(0, helper.lbox_run({ "rm", id }).code)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", name }).code)
    local d2 = pull("lbox/docker")
    assert.are.equal(0, d2.code, d2.err)
    local run = helper.lbox_run { "run", registry.host .. "/lbox/docker" }
    assert.are.same({ 0, "docker's format\n" }, { run.code, run.out }, run.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/docker" }).code)
    local arm = pull("lbox/multi:armonly")
    assert.are.equal(125, arm.code)
    assert.matches("^lbox: error: .* has no image for linux/amd64 %(it has: linux/arm64%)\n$", arm.err)
  end)

  it("pulls by digest, and refuses a manifest whose digest differs", function()
    local by_digest = registry.host .. "/lbox/busybox@" .. pushed.busybox.digest
    local r = helper.lbox_run { "pull", "--insecure", by_digest }
    assert.are.same({ 0, by_digest .. "\n" }, { r.code, r.out }, r.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", by_digest }).code)
    -- the registry serves the manifest changed (still JSON, the same
    -- length: a layer's size one more) under its old digest
    local blob = stored_blob(pushed.layered.digest)
    local original = helper.read_file(blob)
    finally(function() helper.write_file(blob, original) end)
    -- (cjson's key order varies: a size may end its object, no comma after it)
    local changed = original:gsub('"size":(%d+)', function(n)
      return '"size":' .. math.tointeger(n + 1 == 10 ^ #n and n - 1 or n + 1)
    end, 1)
    assert.are.equal(#original, #changed)
    assert.are_not.equal(original, changed)
    helper.write_file(blob, changed)
    local wrong = pull("lbox/layered:v1")
    assert.are.equal(125, wrong.code)
    assert.matches("the manifest has digest sha256:%x+, not " .. pushed.layered.digest .. ": refused", wrong.err)
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find("lbox/layered", 1, true))
  end)

  it("refuses a corrupted blob and stores nothing", function()
    local blob = stored_blob(pushed.corrupt.layers[2].digest)
    local original = helper.read_file(blob)
    finally(function() helper.write_file(blob, original) end)
    -- the same length, other bytes
    helper.write_file(blob, original:sub(1, -5) .. (original:sub(-4) == "XXXX" and "YYYY" or "XXXX"))
    local layers_before = layer_count()
    local base_there = lfs.attributes(STORE .. "/layers/sha256/" .. pushed.corrupt.diff_ids[1]:sub(8)) ~= nil
    local r = pull("lbox/corrupt")
    assert.are.equal(125, r.code)
    assert.matches("^lbox: error: [^\n]*lbox/corrupt:latest: layer 2/2 " .. pushed.corrupt.layers[2].digest
      .. " arrived with digest sha256:%x+: refused, nothing stored\n$", r.err:match("lbox: error:.*$"))
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find("lbox/corrupt", 1, true))
    -- layer 1 came whole and stays for the next pull; prune takes it
    assert.are.equal(layers_before + (base_there and 0 or 1), layer_count())
    if not base_there then
      local prune = helper.lbox_run { "image", "prune" }
      assert.are.equal(0, prune.code, prune.err)
      assert.matches("deleted: " .. pushed.corrupt.diff_ids[1], prune.out)
      assert.are.equal(layers_before, layer_count())
    end
  end)

  it("resumes a download from what an interrupted pull left, and never from wrong bytes", function()
    local layer = pushed.busybox.layers[1]
    local whole = helper.read_file(layer.path)
    local partial = STORE .. "/downloads/" .. layer.digest:sub(8) .. ".partial"
    sh("mkdir -p " .. STORE .. "/downloads")
    local half = #whole // 2
    -- wrong bytes in the part: the registry sends only the rest, the whole is refused
    helper.write_file(partial, string.rep("x", half))
    local r = pull("lbox/busybox")
    assert.are.equal(125, r.code)
    assert.matches("resuming at " .. half .. " of " .. #whole .. " bytes", r.err)
    assert.matches("arrived with digest", r.err)
    assert.is_nil(lfs.attributes(partial), "a wrong part was kept")
    -- the right half: resumed and whole
    helper.write_file(partial, whole:sub(1, half))
    r = pull("lbox/busybox")
    assert.are.equal(0, r.code, r.err)
    assert.matches("resuming at " .. half .. " of " .. #whole .. " bytes", r.err)
    assert.is_nil(lfs.attributes(partial))
    local run = helper.lbox_run { "run", registry.host .. "/lbox/busybox", "echo resumed" }
    assert.are.same({ 0, "resumed\n" }, { run.code, run.out }, run.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/busybox" }).code)
    -- what a pull that died left, prune takes
    helper.write_file(partial, whole:sub(1, half))
    local prune = helper.lbox_run { "image", "prune" }
    assert.are.equal(0, prune.code, prune.err)
    assert.is_nil(lfs.attributes(partial))
  end)

  it("refuses bad references, unknown names and tags, and runs of images not pulled, with one line and exit 125",
    function()
    for _, case in ipairs {
      { { "pull", "busybox" }, "name the registry" },
      { { "pull", "--insecure", registry.host .. "/Lbox/UPPER" }, "a repository is lowercase" },
      { { "pull", "--insecure", registry.host .. "/lbox/busybox@sha256:12" }, "a digest is sha256:" },
      { { "pull", "--insecure", registry.host .. "/lbox/nothing" }, "no such image" },
      { { "pull", "--insecure", registry.host .. "/lbox/busybox:nosuchtag" }, "no such image" },
      -- TLS to a plain HTTP registry: no --insecure, no fallback
      { { "pull", registry.host .. "/lbox/busybox" }, "cannot reach " .. registry.host },
      -- lbox run does not pull, and says so
      { { "run", registry.host .. "/lbox/busybox", "true" }, "no image " .. registry.host .. "/lbox/busybox in the store" },
    } do
      local r = helper.lbox_run(case[1])
      assert.are.equal(125, r.code, table.concat(case[1], " ") .. ": " .. r.err)
      assert.matches("^lbox: error: [^\n]*" .. case[2]:gsub("%p", "%%%0") .. "[^\n]*\n$", r.err:match("lbox: error:.*$"))
    end
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find(registry.host, 1, true))
  end)

  it("logs in to a registry that asks for a password, keeps it 0600, pulls with it, logs out", function()
    registry.stop()
    registry.start("basic")
    finally(function() os.remove(STORE .. "/auth.json") end)
    local anonymous = pull("lbox/busybox")
    assert.are.equal(125, anonymous.code)
    assert.matches("wants a user and password: lbox login " .. registry.host:gsub("%p", "%%%0"), anonymous.err)
    local wrong = helper.lbox_run({ "login", "--insecure", "-u", USER, "--password-stdin", registry.host },
      { stdin = "wrong\n" })
    assert.are.equal(125, wrong.code)
    assert.matches("refused the credentials", wrong.err)
    assert.is_nil(lfs.attributes(STORE .. "/auth.json"))
    local login = helper.lbox_run({ "login", "--insecure", "-u", USER, "--password-stdin", registry.host },
      { stdin = PASSWORD .. "\n" })
    assert.are.same({ 0, "Login Succeeded\n" }, { login.code, login.out }, login.err)
    assert.are.equal("600 0\n", sh("stat -c '%a %u' " .. STORE .. "/auth.json"))
    assert.is_nil(helper.read_file(STORE .. "/auth.json"):find(PASSWORD, 1, true), "the password in clear")
    local r = pull("lbox/busybox")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/busybox" }).code)
    local logout = helper.lbox_run { "logout", registry.host }
    assert.are.equal(0, logout.code, logout.err)
    assert.are.equal(125, pull("lbox/busybox").code)
    assert.are.equal(125, helper.lbox_run({ "logout", registry.host }).code)
  end)

  it("answers a Bearer challenge with a token from the registry's token server", function()
    registry.stop()
    registry.start("token")
    finally(function() os.remove(STORE .. "/auth.json") end)
    local anonymous = pull("lbox/busybox")
    assert.are.equal(125, anonymous.code)
    assert.matches("refused an anonymous token: log in first %(lbox login " .. registry.host:gsub("%p", "%%%0"),
      anonymous.err)
    local login = helper.lbox_run { "login", "--insecure", "-u", USER, "-p", PASSWORD, registry.host }
    assert.are.same({ 0, "Login Succeeded\n" }, { login.code, login.out }, login.err)
    local r = pull("lbox/busybox")
    assert.are.equal(0, r.code, r.err)
    local run = helper.lbox_run { "run", registry.host .. "/lbox/busybox", "echo with a token" }
    assert.are.same({ 0, "with a token\n" }, { run.code, run.out }, run.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/busybox" }).code)
    -- the token is for lbox/busybox only: the registry refuses it for another
    local other = pull("lbox/layered:v1")
    assert.are.equal(125, other.code)
    assert.matches("refused the credentials", other.err)
  end)

  it("saves an image as an OCI layout and imports it back, whiteouts and all", function()
    local work = sh("mktemp -d /tmp/lbox-spec.XXXXXX"):gsub("\n$", "")
    finally(function() sh("rm -rf " .. work) end)
    local name = registry.host .. "/lbox/layered:v1"
    assert.are.equal(0, pull("lbox/layered:v1").code)
    local save = helper.lbox_run { "image", "save", name, "oci:" .. work .. "/layout" }
    assert.are.equal(0, save.code, save.err)
    local index = require("cjson").decode(helper.read_file(work .. "/layout/index.json"))
    assert.are.equal("v1", index.manifests[1].annotations["org.opencontainers.image.ref.name"])
    -- every blob is named by its digest; the top layer carries OCI's whiteouts
    local blobs = sh("cd " .. work .. "/layout/blobs/sha256 && for f in *; do echo $f $(sha256sum < $f); done")
    for name_hex, content_hex in blobs:gmatch("(%x+) (%x+)") do assert.are.equal(name_hex, content_hex) end
    local manifest = require("cjson").decode(helper.read_file(work .. "/layout/blobs/sha256/"
      .. index.manifests[1].digest:sub(8)))
    assert.are.equal(3, #manifest.layers)
    local top = sh("tar -tzf " .. work .. "/layout/blobs/sha256/" .. manifest.layers[3].digest:sub(8))
    assert.matches("%./bin/%.wh%.ls\n", top)
    assert.matches("%./data/%.wh%.%.wh%.%.opq\n", top)
    -- nothing of the store was changed by the save
    assert.are.equal("character special file\n", sh("stat -c '%F' " .. STORE .. "/layers/sha256/"
      .. pushed.layered.diff_ids[3]:sub(8) .. "/root/bin/ls"))
    assert.are.equal(0, helper.lbox_run({ "image", "rm", name }).code)
    local import = helper.lbox_run { "image", "import", "oci:" .. work .. "/layout:v1", "lbox-spec-from-oci" }
    assert.are.same({ 0, "lbox-spec-from-oci\n" }, { import.code, import.out }, import.err)
    local run = helper.lbox_run { "run", "lbox-spec-from-oci", "sh", "-c",
      "ls /data; cat /etc/layer; test -e /bin/ls || echo ls is gone" }
    assert.are.same({ 0, "new\nthree\nls is gone\n" }, { run.code, run.out }, run.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", "lbox-spec-from-oci" }).code)
    -- a blob of the layout corrupted: refused, nothing stored
    local blob = work .. "/layout/blobs/sha256/" .. manifest.layers[2].digest:sub(8)
    sh("printf x >> " .. blob)
    local bad = helper.lbox_run { "image", "import", "oci:" .. work .. "/layout", "lbox-spec-bad-oci" }
    assert.are.equal(125, bad.code)
    assert.matches("layer 2/3 " .. manifest.layers[2].digest .. " has digest sha256:%x+: refused", bad.err)
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find("lbox-spec-bad-oci", 1, true))
    local prune = helper.lbox_run { "image", "prune" }
    assert.are.equal(0, prune.code, prune.err)
    -- an unknown tag, a directory that is no layout
    local nothing = helper.lbox_run { "image", "import", "oci:" .. work .. "/layout:nosuch", "lbox-spec-x" }
    assert.are.equal(125, nothing.code)
    assert.matches("has no image tagged nosuch", nothing.err)
    assert.matches("is not an OCI image layout",
      helper.lbox_run({ "image", "import", "oci:" .. work, "lbox-spec-x" }).err)
  end)

  it("saves an image as a docker save archive and imports it back, whiteouts, configuration and all", function()
    local work = sh("mktemp -d /tmp/lbox-spec.XXXXXX"):gsub("\n$", "")
    finally(function() sh("rm -rf " .. work) end)
    local cjson = require "cjson"
    local name = registry.host .. "/lbox/layered:v1"
    assert.are.equal(0, pull("lbox/layered:v1").code)
    local file = work .. "/image.tar"
    local save = helper.lbox_run { "image", "save", name, "docker-archive:" .. file }
    assert.are.same({ 0, "" }, { save.code, save.err })
    -- docker's layout: manifest.json, HEX.json, DIFF_ID/layer.tar named by their digests
    sh("mkdir " .. work .. "/x && tar -xf " .. file .. " -C " .. work .. "/x")
    local manifest = cjson.decode(helper.read_file(work .. "/x/manifest.json"))
    assert.are.same({ name }, manifest[1].RepoTags)
    assert.are.equal(manifest[1].Config:match("^(%x+)%.json$"), sha256(work .. "/x/" .. manifest[1].Config):sub(8))
    local config = cjson.decode(helper.read_file(work .. "/x/" .. manifest[1].Config))
    assert.are.equal(3, #manifest[1].Layers)
    for i, layer in ipairs(manifest[1].Layers) do
      assert.are.equal(config.rootfs.diff_ids[i], sha256(work .. "/x/" .. layer))
      assert.are.equal(layer, config.rootfs.diff_ids[i]:sub(8) .. "/layer.tar")
    end
    assert.matches("%./bin/%.wh%.ls\n", sh("tar -tf " .. work .. "/x/" .. manifest[1].Layers[3]))
    local before_config = cjson.decode(helper.lbox_run({ "image", "inspect", name }).out)[1].config.config
    assert.are.same(before_config, config.config)
    -- a file that exists is not overwritten
    local again = helper.lbox_run { "image", "save", name, "docker-archive:" .. file }
    assert.are.same({ 125, "lbox: error: " .. file .. " exists: save to a new file\n" }, { again.code, again.err })
    assert.are.equal(0, helper.lbox_run({ "image", "rm", name }).code)
    local import = helper.lbox_run { "image", "import", "docker-archive:" .. file, "lbox-spec-from-archive" }
    assert.are.same({ 0, "lbox-spec-from-archive\n" }, { import.code, import.out }, import.err)
    finally(function() helper.lbox_run { "image", "rm", "lbox-spec-from-archive" } end)
    local run = helper.lbox_run { "run", "lbox-spec-from-archive", "sh", "-c",
      "ls /data; cat /etc/layer; test -e /bin/ls || echo ls is gone" }
    assert.are.same({ 0, "new\nthree\nls is gone\n" }, { run.code, run.out }, run.err)
    assert.are.same(before_config,
      cjson.decode(helper.lbox_run({ "image", "inspect", "lbox-spec-from-archive" }).out)[1].config.config)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", "lbox-spec-from-archive" }).code)
    -- no image, no file
    local none = helper.lbox_run { "image", "save", "lbox-spec-nosuch", "docker-archive:" .. work .. "/none.tar" }
    assert.are.same({ 125, "lbox: error: no image \"lbox-spec-nosuch\"\n" }, { none.code, none.err })
    assert.is_nil(lfs.attributes(work .. "/none.tar"))
  end)

  it("still runs, lists and removes an image from before layers (a rootfs directory)", function()
    local dir = STORE .. "/images/lbox-spec-legacy"
    finally(function() sh("rm -rf " .. dir) end)
    sh("mkdir -p " .. dir .. " && cp -a " .. STORE .. "/images/busybox/rootfs/ " .. dir .. "/rootfs && "
      .. "echo legacy > " .. dir .. "/rootfs/marker && "
      .. [[echo '{"name":"lbox-spec-legacy","created":"2026-01-01T00:00:00Z","source":"old","cmd":["cat","/marker"]}' > ]]
      .. dir .. "/manifest.json")
    local run = helper.lbox_run { "run", "lbox-spec-legacy" }
    assert.are.same({ 0, "legacy\n" }, { run.code, run.out }, run.err)
    assert.matches("\nlbox%-spec%-legacy +latest ", helper.lbox_run({ "image", "ls" }).out)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", "lbox-spec-legacy" }).code)
    assert.is_nil(lfs.attributes(dir))
  end)

  it("leaves no image when killed midway; prune sweeps what it left, and the pull starts again", function()
    local proc = helper.start { helper.lbox, "pull", "--insecure", registry.host .. "/lbox/layered:v1" }
    -- killed once it has begun (its staging directory is there): where
    -- exactly it was does not matter, what it leaves must be whole
    local began = helper.eventually(function()
      for name in lfs.dir(STORE .. "/tmp") do if name:match("^pull%-") then return true end end
      return false
    end, 30)
    core.kill(proc.pid, core.SIGKILL)
    helper.finish(proc, 30)
    assert.is_true(began, "the pull never began")
    local ls = helper.lbox_run { "image", "ls" }
    assert.is_nil(ls.out:find("lbox/layered", 1, true))
    -- every layer there is whole (its record written last, before the rename)
    for hex in lfs.dir(STORE .. "/layers/sha256") do
      if hex:match("^%x+$") then assert.is_truthy(lfs.attributes(STORE .. "/layers/sha256/" .. hex .. "/layer.json")) end
    end
    local prune = helper.lbox_run { "image", "prune" }
    assert.are.equal(0, prune.code, prune.err)
    assert.are.same({}, helper.snapshot().staging)
    local r = pull("lbox/layered:v1")
    assert.are.equal(0, r.code, r.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", registry.host .. "/lbox/layered:v1" }).code)
  end)

  it("refuses a registry that answers garbage, or too much, with one line and nothing stored", function()
    -- a fake registry: static files of busybox httpd
    local www = REGISTRY_DIR .. "/garbage"
    sh("rm -rf " .. www .. " && mkdir -p " .. www .. "/v2/lbox/garbage/manifests " .. www .. "/v2/lbox/huge/manifests && "
      .. "echo '<html>not a manifest</html>' > " .. www .. "/v2/lbox/garbage/manifests/latest && "
      .. "head -c 5000000 /dev/zero > " .. www .. "/v2/lbox/huge/manifests/latest && : > " .. www .. "/httpd.conf")
    local proc, host = start_httpd(www, www .. "/httpd.conf")
    finally(function()
      core.kill(proc.pid, core.SIGTERM)
      helper.finish(proc, 30)
    end)
    local garbage = helper.lbox_run { "pull", "--insecure", host .. "/lbox/garbage" }
    assert.are.equal(125, garbage.code)
    assert.matches("^lbox: error: [^\n]*lbox/garbage:latest: its manifest is not JSON\n$", garbage.err:match("lbox: error:.*$"))
    local huge = helper.lbox_run { "pull", "--insecure", host .. "/lbox/huge" }
    assert.are.equal(125, huge.code)
    assert.matches("^lbox: error: " .. host .. " sent more for /v2/lbox/huge/manifests/latest than it may [^\n]*: refused\n$",
      huge.err:match("lbox: error:.*$"))
    -- a blob bigger than its manifest says (the real registry takes the manifest)
    local manifest = helper.read_file(BUILD .. "/manifest-lbox-busybox-latest")
    local small = manifest:gsub('"size":' .. pushed.busybox.layers[1].size, '"size":1000')
    assert.are_not.equal(manifest, small)
    registry.push_manifest("lbox/busybox", "small", OCI_MANIFEST, small)
    local bigger = pull("lbox/busybox:small")
    assert.are.equal(125, bigger.code)
    assert.matches("^lbox: error: [^\n]* sent more for /v2/lbox/busybox/blobs/" .. pushed.busybox.layers[1].digest
      .. " than it may", bigger.err:match("lbox: error:.*$"))
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find(host, 1, true))
  end)

  it("imports a docker save archive, whiteouts and all, and refuses one that points out of itself", function()
    local work = sh("mktemp -d /tmp/lbox-spec.XXXXXX"):gsub("\n$", "")
    finally(function() sh("rm -rf " .. work) end)
    local cjson = require "cjson"
    -- as docker save writes it: manifest.json, the config, a directory per
    -- layer (the third one gzip-compressed, as some tools leave it)
    sh("mkdir -p " .. work .. "/a/l1 " .. work .. "/a/l2 " .. work .. "/a/l3 && cp " .. BUILD .. "/busybox.tar "
      .. work .. "/a/l1/layer.tar && cp " .. BUILD .. "/data.tar " .. work .. "/a/l2/layer.tar && gzip -nc "
      .. BUILD .. "/whiteouts.tar > " .. work .. "/a/l3/layer.tar")
    local config = cjson.encode { architecture = "amd64", os = "linux", config = { Cmd = { "sh", "-c", "echo /data/*" } },
      rootfs = { type = "layers", diff_ids = pushed.layered.diff_ids } }
    helper.write_file(work .. "/a/config.json", config)
    local function archive(manifest)
      helper.write_file(work .. "/a/manifest.json", cjson.encode(manifest))
      sh("tar -C " .. work .. "/a -cf " .. work .. "/image.tar .")
      return "docker-archive:" .. work .. "/image.tar"
    end
    local good = archive { { Config = "config.json", RepoTags = { "lbox-spec:1" },
                             Layers = { "l1/layer.tar", "l2/layer.tar", "l3/layer.tar" } } }
    local r = helper.lbox_run { "image", "import", good, "lbox-spec-docker-archive" }
    assert.are.same({ 0, "lbox-spec-docker-archive\n" }, { r.code, r.out }, r.err)
    finally(function() helper.lbox_run { "image", "rm", "lbox-spec-docker-archive" } end)
    local run = helper.lbox_run { "run", "lbox-spec-docker-archive" }
    assert.are.same({ 0, "/data/new\n" }, { run.code, run.out }, run.err)
    run = helper.lbox_run { "run", "lbox-spec-docker-archive", "sh", "-c", "test -e /bin/ls || echo ls is gone" }
    assert.are.same({ 0, "ls is gone\n" }, { run.code, run.out }, run.err)
    assert.are.equal(0, helper.lbox_run({ "image", "rm", "lbox-spec-docker-archive" }).code)
    -- a manifest naming a file out of the archive, through .. or a link
    sh("ln -s /etc/passwd " .. work .. "/a/outside.json")
    for _, case in ipairs {
      { { { Config = "../../../etc/passwd", Layers = {} } }, "names a bad config: ../../../etc/passwd" },
      { { { Config = "outside.json", Layers = {} } }, "has no config outside.json" },
    } do
      local bad = helper.lbox_run { "image", "import", archive(case[1]), "lbox-spec-bad-archive" }
      assert.are.equal(125, bad.code)
      assert.are.equal("lbox: error: the archive" .. (case[2]:sub(1, 1) == "n" and "'s manifest.json " or " ")
        .. case[2] .. "\n", bad.err)
    end
    assert.is_nil(helper.lbox_run({ "image", "ls" }).out:find("lbox-spec-bad-archive", 1, true))
  end)

  it("shows an image's ExposedPorts and publishes each on a free host port with -P", function()
    local work = sh("mktemp -d /tmp/lbox-spec.XXXXXX"):gsub("\n$", "")
    finally(function() sh("rm -rf " .. work) end)
    local cjson = require "cjson"
    sh("mkdir -p " .. work .. "/a/l1 && cp " .. BUILD .. "/busybox.tar " .. work .. "/a/l1/layer.tar")
    helper.write_file(work .. "/a/config.json", cjson.encode { architecture = "amd64", os = "linux",
      config = { ExposedPorts = { ["80/tcp"] = {}, ["81/tcp"] = {} } },
      rootfs = { type = "layers", diff_ids = { sha256(BUILD .. "/busybox.tar") } } })
    helper.write_file(work .. "/a/manifest.json", cjson.encode { { Config = "config.json", Layers = { "l1/layer.tar" } } })
    sh("tar -C " .. work .. "/a -cf " .. work .. "/image.tar .")
    local name = "lbox-spec-exposed"
    assert.are.equal(0, helper.lbox_run({ "image", "import", "docker-archive:" .. work .. "/image.tar", name }).code)
    local shown = cjson.decode(helper.lbox_run({ "image", "inspect", name }).out)[1]
    assert.are.same({ ["80/tcp"] = {}, ["81/tcp"] = {} }, shown.config.config.ExposedPorts)
    local r = helper.lbox_run { "run", "-d", "--name", "spec-exposed", "-P", name, "sh", "-c",
      "while true; do echo pong80 | nc -l -p 80; done & while true; do echo pong81 | nc -l -p 81; done" }
    finally(function()
      helper.lbox_run { "rm", "-f", "spec-exposed" }
      helper.lbox_run { "image", "rm", name }
    end)
    assert.are.equal(0, r.code, r.err)
    local ports = cjson.decode(helper.lbox_run({ "inspect", "spec-exposed" }).out)[1].ports
    assert.are.equal(2, #ports)
    local seen = {}
    for _, port in ipairs(ports) do
      -- JSON's numbers come back as floats
      port.host_port, port.container_port = math.tointeger(port.host_port), math.tointeger(port.container_port)
      assert.is_true(port.host_port >= 32768 and port.host_port <= 60999, tostring(port.host_port))
      assert.is_nil(seen[port.host_port])
      seen[port.host_port] = true
      -- reached through the chosen port on the host's loopback
      assert.is_true(helper.eventually(function()
        return helper.sh("/bin/busybox nc -w 2 127.0.0.1 " .. port.host_port .. " </dev/null").out
          == "pong" .. port.container_port .. "\n"
      end), "no answer through 127.0.0.1:" .. port.host_port)
    end
    assert.are.equal(0, helper.lbox_run({ "rm", "-f", "spec-exposed" }).code)
  end)
end)

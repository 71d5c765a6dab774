-- lbox bench_pull [ROUNDS]: `lbox pull` of a three-layer image from a
-- registry on this machine (Debian's docker-registry on 127.0.0.1, a
-- storage of the benchmark's own), next to the same work by hand: curl
-- for the manifest, the configuration and each layer, sha256sum -c for
-- each blob, tar -xzf of each layer into a directory of its own. lbox does
-- more (each layer's diff_id, every tar entry checked, the store's
-- records): the ratio says what that costs. Each round pulls into a fresh
-- store; the order alternates; medians of ROUNDS rounds (default 5).
local cjson = require "cjson"
local cli = require "lbox.cli"
local core = require "lbox.core"
local errors = require "lbox.errors"
local fs = require "lbox.fs"
local images = require "lbox.images"
local options = require "lbox.options"

local opts, args = options.command({
  name = "bench_pull", synopsis = { "[ROUNDS]" }, summary = "measure lbox pull against curl, sha256sum and tar",
  description = "A three-layer image (busybox, text, random bytes; gzip) pulled from a local docker-registry "
    .. "by lbox pull and by hand, ROUNDS alternating rounds (5 by default), medians.",
  operands = { 0, 1 },
}, { ... })
if not opts then return 0 end
local rounds = math.tointeger(tonumber(args[1])) or 5
local lbox = os.getenv("LBOX_BENCH_LBOX") or cli.root .. "/lbox"
local REGISTRY = "/usr/bin/docker-registry"
local REPOSITORY, TAG = "bench/image", "v1"
local work = "/tmp/lbox-bench-pull." .. core.getpid()

local function sh(command)
  if not os.execute(command) then errors.raise("bench: failed: " .. command) end
end

local function output(command)
  local p = assert(io.popen(command))
  local text = p:read("a")
  p:close()
  return text
end

local function sha256(path) return "sha256:" .. output("sha256sum < " .. path):match("^(%x+)") end
local function size(path) return math.tointeger(tonumber(output("stat -c %s " .. path))) end

-- argv in the background, its output discarded. @return its pid
local function spawn(argv)
  local pid = assert(core.clone(0))
  if pid == 0 then
    local null = core.open("/dev/null", "rw")
    for fd = 0, 2 do core.dup2(null, fd) end
    core.execve(argv[1], argv, { "PATH=/usr/sbin:/usr/bin:/sbin:/bin" })
    core._exit(127)
  end
  return pid
end

-- The registry on a free high port of 127.0.0.1. @return its pid, its URL
local function start_registry()
  for _ = 1, 10 do
    local port = 40000 + math.random(0, 19999)
    fs.write_file(work .. "/config.yml", table.concat({
      "version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
      "storage:", "  filesystem:", "    rootdirectory: " .. work .. "/storage", "http:", "  addr: 127.0.0.1:" .. port,
      "" }, "\n"))
    local pid = spawn { REGISTRY, "serve", work .. "/config.yml" }
    local url = "http://127.0.0.1:" .. port
    for _ = 1, 100 do -- 10 s at most
      if core.waitpid(pid, "nohang") ~= 0 then break end -- it ended: the port was taken
      if os.execute("curl -s -o /dev/null " .. url .. "/v2/") then return pid, url end
      core.poll({}, 100)
    end
    pcall(core.kill, pid, core.SIGKILL)
    pcall(core.waitpid, pid)
  end
  errors.raise("bench: docker-registry did not start")
end

local function push_blob(url, path)
  local digest = sha256(path)
  local location = output("curl -sS -f -X POST -D - -o /dev/null " .. url .. "/v2/" .. REPOSITORY .. "/blobs/uploads/")
    :match("\n[Ll]ocation: ([^\r\n]+)") or errors.raise("bench: the registry gave no upload location")
  if location:sub(1, 1) == "/" then location = url .. location end
  location = location .. (location:find("?", 1, true) and "&" or "?") .. "digest=" .. digest
  sh("curl -sS -f -X PUT -H 'Content-Type: application/octet-stream' --data-binary @" .. path .. " '" .. location
    .. "' -o /dev/null")
  return digest
end

-- The image's three layers (gzip tars) and configuration, pushed.
-- @return the layers' digests, the configuration's, the bytes pushed
local function push_image(url)
  local build = work .. "/build"
  sh("mkdir -p " .. build .. "/text/data " .. build .. "/random/data")
  sh("tar -C " .. images.get(images.DEFAULT).rootfs .. " --numeric-owner -cf " .. build .. "/l1.tar .")
  sh("seq 1 3000000 > " .. build .. "/text/data/numbers && tar -C " .. build .. "/text -cf " .. build .. "/l2.tar .")
  sh("head -c 16777216 /dev/urandom > " .. build .. "/random/data/random && tar -C " .. build .. "/random -cf "
    .. build .. "/l3.tar .")
  local descriptors, diff_ids, digests, total = {}, {}, {}, 0
  for i = 1, 3 do
    local tar = build .. "/l" .. i .. ".tar"
    diff_ids[i] = sha256(tar)
    sh("gzip -n " .. tar)
    digests[i] = push_blob(url, tar .. ".gz")
    descriptors[i] = { mediaType = "application/vnd.oci.image.layer.v1.tar+gzip", digest = digests[i],
                       size = size(tar .. ".gz") }
    total = total + descriptors[i].size
  end
  fs.write_file(build .. "/config.json", cjson.encode { architecture = "amd64", os = "linux",
    config = { Cmd = { "sh" } }, rootfs = { type = "layers", diff_ids = diff_ids } })
  local config = push_blob(url, build .. "/config.json")
  fs.write_file(build .. "/manifest.json", cjson.encode { schemaVersion = 2,
    mediaType = "application/vnd.oci.image.manifest.v1+json", layers = descriptors,
    config = { mediaType = "application/vnd.oci.image.config.v1+json", digest = config,
               size = size(build .. "/config.json") } })
  sh("curl -sS -f -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary @" .. build
    .. "/manifest.json " .. url .. "/v2/" .. REPOSITORY .. "/manifests/" .. TAG .. " -o /dev/null")
  return digests, config, total
end

-- The same pull by hand: URL DIR CONFIG LAYER...
local BY_HAND = [[
set -e
url=$1 dir=$2 config=$3
shift 3
mkdir -p "$dir"
curl -sSf -o "$dir/manifest.json" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "$url/v2/bench/image/manifests/v1"
curl -sSf -o "$dir/config.json" "$url/v2/bench/image/blobs/$config"
echo "${config#sha256:}  $dir/config.json" | sha256sum -c --quiet
for layer in "$@"; do
  curl -sSf -o "$dir/layer.tar.gz" "$url/v2/bench/image/blobs/$layer"
  echo "${layer#sha256:}  $dir/layer.tar.gz" | sha256sum -c --quiet
  mkdir "$dir/${layer#sha256:}"
  tar -xzf "$dir/layer.tar.gz" -C "$dir/${layer#sha256:}" --numeric-owner
  rm "$dir/layer.tar.gz"
done
]]

local function timed(command)
  local started = core.monotonic()
  sh(command)
  return core.monotonic() - started
end

local function median(list)
  table.sort(list)
  local n = #list
  return n % 2 == 1 and list[(n + 1) // 2] or (list[n // 2] + list[n // 2 + 1]) / 2
end

if core.geteuid() ~= 0 then errors.raise("bench: needs root") end
for _, program in ipairs { REGISTRY, "/usr/bin/curl", "/usr/bin/sha256sum" } do
  if not fs.exists(program) then errors.raise("bench: " .. program .. " is missing: make deps-bench") end
end
sh("mkdir -p " .. work)
local registry_pid
local ok, err = pcall(function()
  local url
  registry_pid, url = start_registry()
  local layers, config, total = push_image(url)
  fs.write_file(work .. "/by-hand.sh", BY_HAND)
  local host = url:gsub("^http://", "")
  local jobs = {
    { "lbox pull", function(dir)
      return string.format("LBOX_STORE=%s %s pull --insecure %s/%s:%s >/dev/null 2>&1", dir, lbox, host, REPOSITORY, TAG)
    end },
    { "curl + sha256sum -c + tar -xzf", function(dir)
      return string.format("sh %s/by-hand.sh %s %s %s %s", work, url, dir, config, table.concat(layers, " "))
    end },
  }
  local samples = { {}, {} }
  for round = 0, rounds do -- round 0 warms the caches up
    for i = 1, 2 do
      local j = (round + i) % 2 + 1
      local dir = work .. "/target"
      local seconds = timed(jobs[j][2](dir))
      sh("rm -rf " .. dir)
      if round > 0 then table.insert(samples[j], seconds) end
    end
  end
  local a, b = median(samples[1]), median(samples[2])
  print(string.format("(g) pull: a three-layer image, %.1f MB of gzip, from docker-registry on 127.0.0.1; "
    .. "medians of %d alternating rounds, each into a fresh store", total / 1e6, rounds))
  print(string.format("  %-38s %8.2f ms | %-32s %8.2f ms | %5.2f", jobs[1][1], a * 1000, jobs[2][1], b * 1000, a / b))
end)
if registry_pid then
  core.kill(registry_pid, core.SIGTERM)
  core.waitpid(registry_pid)
end
sh("rm -rf " .. work)
if not ok then error(err, 0) end
return 0

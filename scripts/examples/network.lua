-- Two containers on a private bridge of their own: "web" answers on port
-- 80, published on the host as PORT; "client" reaches it by name, and a
-- container on the host's network through 127.0.0.1:PORT. Then all goes.
--   lbox examples/network [PORT]
local lbox = require "lbox"
local options = require "lbox.options"

local opts, args = options.command({
  name = "examples/network", synopsis = { "[PORT]" },
  summary = "two containers on a bridge of their own: web answers on port 80, published as PORT (default 8080); "
    .. "a client reaches it by name, and a container on the host's network through 127.0.0.1:PORT",
  operands = { 0, 1 },
}, { ... })
if not opts then return 0 end
local port = math.tointeger(tonumber(args[1] or 8080))
if not port then require("lbox.errors").raise(string.format("PORT %q: a port number expected", args[1])) end
local net = lbox.network.create("example-net", { subnet = "10.123.0.0/24" })
local serve = "while true; do echo hello from $(hostname) | nc -l -p 80; done"
local web = lbox.container {
  name = "example-web", hostname = "web", command = { "sh", "-c", serve },
  network = { name = net.name, ports = { { host_port = port, container_port = 80 } } },
}
local ok, err = pcall(function()
  web:start()
  local function ask(target, namespaces)
    local status = lbox.run { namespaces = namespaces, network = not namespaces and net.name or nil,
      -- until it answers: nc may end on its empty stdin before the answer came
      command = { "sh", "-c", "for i in 1 2 3 4 5; do a=$(nc -w 2 " .. target .. ") && [ -n \"$a\" ] && echo \"$a\" && exit; "
        .. "sleep 0.2; done; exit 1" } }
    print(string.format("%s: exit %d", target, status.exit_code))
  end
  ask("web 80")
  ask("127.0.0.1 " .. port, { "uts", "pid", "mount", "ipc" }) -- no network namespace: the host's
end)
web:destroy()
lbox.network.remove(net.name)
if not ok then error(err, 0) end

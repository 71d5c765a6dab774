--- The lbox command: `lbox SCRIPT [ARGS...]` runs a recipe, `lbox` alone
-- opens the REPL. Expected failures print one line; bugs print a traceback.
local container = require "lbox.container"
local errors = require "lbox.errors"
local lfs = require "lfs"

local M = {}

M.BUG_EXIT_CODE = 70 -- EX_SOFTWARE: not bad input, a bug in lbox or in a recipe

M.USAGE = [=[
usage: lbox [RECIPE [ARGS...]]
  lbox run [OPTIONS] [IMAGE] [COMMAND [ARG...]]   run a command in a new container (scripts/run.lua)
  lbox image|commit|export ...                   the image store (scripts/image.lua ...)
  lbox pull|login|logout ...                     images from a registry (scripts/pull.lua ...)
  lbox ps|logs|exec|stop|kill|wait|rm|inspect|stats|top|cp|pause|unpause|restart
                                                 containers (scripts/ps.lua ...)
  lbox network create|ls|inspect|rm ...          networks of containers (scripts/network.lua)
  lbox my-recipe.lua [ARGS...]                   run a Lua recipe
  lbox -i my-recipe.lua [ARGS...]                run it, then the REPL with its globals at hand
  lbox                                           open the REPL, with `lbox` loaded
  lbox --version                                 print lbox's version
  lbox COMMAND --help                            a command's options (man lbox-COMMAND)
A RECIPE is looked up in the current directory, then in lbox's scripts/;
NAME means NAME.lua.]=]

local function is_file(path)
  return lfs.attributes(path, "mode") == "file"
end

--- Where recipe `name` is: as given, then in `root`/scripts; with ".lua" added
-- when it has no extension.
function M.find_recipe(root, name)
  local names = { name }
  if not name:match("%.lua$") then names[2] = name .. ".lua" end
  for _, candidate in ipairs(names) do
    if is_file(candidate) then return candidate end
  end
  if name:sub(1, 1) ~= "/" then
    for _, candidate in ipairs(names) do
      local path = root .. "/scripts/" .. candidate
      if is_file(path) then return path end
    end
  end
  return nil
end

local function exit_code_of(result)
  if math.type(result) == "integer" then return result end
  if result == false then return 1 end
  return 0
end

--- Run `fn` under lbox's error boundary.
-- @return the exit code: fn's result, a user error's code, or BUG_EXIT_CODE
function M.protected(fn, ...)
  local ok, result = xpcall(fn, function(e)
    if errors.is_user_error(e) then return e end
    return debug.traceback(tostring(e), 2)
  end, ...)
  container.destroy_all()
  if ok then return exit_code_of(result) end
  if errors.is_user_error(result) then
    io.stderr:write("lbox: error: ", result.message, "\n")
    return result.code
  end
  io.stderr:write("lbox: unexpected error, a bug in lbox or in the recipe:\n", result, "\n")
  return M.BUG_EXIT_CODE
end

--- Entry point, called by the lbox binary.
-- @param root the directory holding lua/ and scripts/
-- @param argv the command line; argv[0] is the program
function M.main(root, argv)
  M.root = root
  local name = argv[1]
  if name == nil then
    return M.protected(function() return require("lbox.repl").run() end)
  end
  if name == "-h" or name == "--help" then
    print(M.USAGE)
    return 0
  end
  if name == "--version" then
    print("lbox " .. require("lbox").version)
    return 0
  end
  local interactive = name == "-i"
  if interactive then name = argv[2] end
  local path = name and M.find_recipe(root, name)
  if not path then
    io.stderr:write(string.format("lbox: error: no recipe %q in the current directory or in %s/scripts\n",
      tostring(name), root))
    return errors.codes.lbox
  end
  local repl = interactive and require("lbox.repl")
  local env = repl and repl.environment() or _G
  local chunk, msg = loadfile(path, "t", env)
  if not chunk then
    io.stderr:write("lbox: error: ", msg, "\n")
    return errors.codes.lbox
  end
  -- like the lua interpreter: arg[0] is the script, arg[1..] its arguments
  local script_args = { [0] = path, table.unpack(argv, interactive and 3 or 2) }
  _G.arg = script_args
  if not interactive then return M.protected(chunk, table.unpack(script_args)) end
  -- -i: the recipe's globals and first result (`_`) stay at hand in the REPL,
  -- and its containers live on until the REPL ends
  return M.protected(function()
    local ok, result = xpcall(chunk, debug.traceback, table.unpack(script_args))
    if ok then
      env._ = result
    else
      io.stderr:write("lbox: the recipe failed: ", tostring(errors.is_user_error(result) and result.message or result), "\n")
    end
    return repl.run(env)
  end)
end

return M

--- A docker-style command line parser: options come before the command;
-- `-it` combines flags; `--name=value`, `--name value`, `-m value`, `-m100m`;
-- the first word that is not an option, or `--`, ends them.
--
-- A definition: { "memory", short = "m", value = "SIZE", help = "...",
--   list = true (repeatable), aliases = { "mem" } (also as `-mem`) }.
local errors = require "lbox.errors"

local M = {}

local function index(defs)
  local by_name = {}
  for _, def in ipairs(defs) do
    by_name["--" .. def[1]] = def
    if def.short then by_name["-" .. def.short] = def end
    for _, alias in ipairs(def.aliases or {}) do
      by_name["-" .. alias] = def
      by_name["--" .. alias] = def
    end
  end
  return by_name
end

local function store(opts, def, value)
  local key = def[1]
  if def.list then
    opts[key] = opts[key] or {}
    table.insert(opts[key], value)
  else
    opts[key] = value
  end
end

--- Parse `argv` from position `first`.
-- @return options table (keys are the long names), index of the first
--   non-option word (#argv + 1 when there is none)
function M.parse(defs, argv, first)
  local by_name = index(defs)
  local opts = {}
  local i = first or 1
  while i <= #argv do
    local word = argv[i]
    if word == "--" then return opts, i + 1 end
    if word:sub(1, 1) ~= "-" or word == "-" then break end
    local name, inline = word:match("^(%-%-[^=]+)=(.*)$")
    name = name or word
    local def = by_name[name]
    if not def and not word:match("^%-%-") then
      -- combined short flags: -it, -m100m
      for pos = 2, #word do
        local short = by_name["-" .. word:sub(pos, pos)]
        if not short then
          errors.raise(string.format("unknown flag %q (in %q)", "-" .. word:sub(pos, pos), word))
        end
        if short.value then
          local rest = word:sub(pos + 1)
          if rest == "" then
            i = i + 1
            rest = argv[i] or errors.raise(string.format("flag %q needs a value (%s)", "-" .. short.short, short.value))
          end
          store(opts, short, rest)
          break
        end
        store(opts, short, true)
      end
    elseif not def then
      errors.raise(string.format("unknown flag %q", name))
    elseif def.value then
      if not inline then
        i = i + 1
        inline = argv[i] or errors.raise(string.format("flag %q needs a value (%s)", name, def.value))
      end
      store(opts, def, inline)
    elseif inline then
      errors.raise(string.format("flag %q takes no value", name))
    else
      store(opts, def, true)
    end
    i = i + 1
  end
  return opts, i
end

--- Usage text: one line per option.
function M.usage(defs)
  local lines = {}
  for _, def in ipairs(defs) do
    local names = (def.short and ("-" .. def.short .. ", ") or "    ") .. "--" .. def[1]
    if def.value then names = names .. " " .. def.value end
    lines[#lines + 1] = string.format("  %-28s %s", names, def.help or "")
  end
  return table.concat(lines, "\n")
end

return M

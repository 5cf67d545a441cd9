-- wrk script for bench/bench.sh's convergence run: a light, steady load.
-- Argument (after wrk's `--`): the pause in milliseconds each connection
-- takes between two requests. WRK_REPORT_LUA is the path of wrk-report.lua,
-- whose done() hook prints the result line the script parses.
local pause = 4

function init(args)
  pause = tonumber(args[1]) or pause
end

function delay()
  return pause
end

-- The result line: loaded at startup from the path given in WRK_REPORT_LUA.
dofile(os.getenv("WRK_REPORT_LUA"))

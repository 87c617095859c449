# json_field.awk: get(line, key), the value of "key" in a flat JSON line
# (quotes dropped), or "-" when absent. Loaded before the table programs:
#   awk -f bench/json_field.awk -f bench/threads.awk RESULTS
function get(line, key,    v) {
    if (match(line, "\"" key "\":[^,}]*")) {
        v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
        gsub(/"/, "", v)
        return v
    }
    return "-"
}

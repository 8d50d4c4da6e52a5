#!/usr/bin/env bash
# A mutation check: do the tests catch the bugs they are meant to rule out?
#   ./scripts/mutants.sh                  # every mutant of the table
#   ./scripts/mutants.sh late-lapse ...   # only the mutants named
#   ./scripts/mutants.sh --list           # the table
#   ./scripts/mutants.sh --no-baseline ... # skip the check that the tests pass unmutated
# Each mutant is one precise substitution in the Lua scripts or a Rust hot path. The script copies
# the working tree (committed or not) into a scratch tree, applies one mutant at a time there,
# builds, and runs the e2e tests aimed at it; the mutant is KILLED when they fail and SURVIVED
# when they pass (NO TESTS when its filters select none, NO BUILD when it does not compile: neither
# counts as killed). It exits non-zero unless every mutant is killed. The working tree's files are
# never changed.
#
# The scratch tree and its own target dir (target/mutants/, or MUTANTS_DIR) are kept between runs,
# so a mutant rebuilds only queue-core and what depends on it. Its own target dir, because the
# binaries the e2e tests start (target/debug/e2e-worker...) have fixed names: a mutant's must not
# replace the working tree's. The first run builds every dependency once.
#
# MUTANT_TIMEOUT (seconds, default 1200) bounds one mutant's test run; a run cut off counts as
# killed (its tests did not pass). Logs: <MUTANTS_DIR>/logs/<mutant>.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

# The mutants and the tests that must kill each: filters of the e2e tests (a test runs when its
# name, `module::test`, contains any of them), as for `cargo test -p e2e --test it -- <filter>...`.
# What each mutant changes is in `mutation` below.
#  name               file                          tests
MUTANTS=(
  "batch-order        queue-core/lua/process.lua    model:: concurrency::g3"
  "reserve-twice      queue-core/lua/process.lua    model:: concurrency::g1_jobs_queued_while_no_worker_runs"
  "lease-in-seconds   queue-core/lua/process.lua    processes::g4_a_worker_killed_holding_a_lease"
  "late-lapse         queue-core/lua/common.lua     expiry::g5 seat_record::"
  "cap-off-by-one     queue-core/lua/process.lua    model:: concurrency::g2"
  "decode-at-deadline queue-core/src/seat.rs        expiry::g5 seat_record::"
  "read-lapse-late    queue-core/src/seat.rs        expiry::g5 seat_record::"
  "hold-a-second-long queue-core/src/process.rs     expiry::g6"
  "write-then-fail    queue-core/lua/process.lua    atomicity::a_job_that_meets"
  "log-after-write    queue-core/lua/process.lua    atomicity::a_job_that_meets"
  "holders-read-late  queue-core/lua/process.lua    atomicity::a_job_that_meets"
  "count-last         queue-core/lua/process.lua    atomicity::a_reserve_whose_count"
  "broken-fails-all   queue-core/lua/enqueue.lua    atomicity::an_event_whose_queue_is_broken"
  "tag-per-event      api/src/job_ids.rs            job_ids::"
  "wait-past-a-miss   api/src/waiters.rs            api_contract::a_wait_on_a_job_accepted_here"
  "wait-past-forget   api/src/waiters.rs            api_contract::a_wait_on_a_job_whose_record"
)

# Sets `from` (text that must occur exactly once in the mutant's file) and `to` (what replaces it).
mutation() {
  case $1 in
    batch-order) # the jobs of a batch applied by seat, then sequence, instead of in queue order
      from="local jobs = redis.call('LPOP', queue, ARGV[1]) or {}"
      to="$from
table.sort(jobs, function(a, b)
  local _, _, seat_a, _, seq_a = decode_job(a)
  local _, _, seat_b, _, seq_b = decode_job(b)
  if tonumber(seat_a) ~= tonumber(seat_b) then return tonumber(seat_a) < tonumber(seat_b) end
  return tonumber(seq_a) < tonumber(seq_b)
end)" ;;
    reserve-twice) # reserve forgets to refuse a seat that is already Reserved
      from="      if status == 'R' then return CODE.CONFLICT, raw end
"
      to="" ;;
    lease-in-seconds) # the renewed lease read as seconds: a dead worker's queue waits ~33 minutes
      from="now + (ARGV[5] + 0)"
      to="now + (ARGV[5] + 0) * 1000" ;;
    late-lapse) # the scripts let a hold lapse 700 ms after its deadline
      from="if deadline > now then"
      to="if deadline + 700 > now then" ;;
    cap-off-by-one) # a user may hold MAX_HELD_SEATS + 1 seats
      from="#live >= max_held"
      to="#live > max_held" ;;
    decode-at-deadline) # the reads still show a hold at its deadline
      from="SeatStatus::OnHold if t1 > now =>"
      to="SeatStatus::OnHold if t1 >= now =>" ;;
    read-lapse-late) # the reads let a hold lapse 700 ms after its deadline
      from="SeatStatus::OnHold if t1 > now =>"
      to="SeatStatus::OnHold if t1 + 700 > now =>" ;;
    hold-a-second-long) # holds made by jobs last HOLD_TTL plus a second
      from="arg(rules.hold_ttl_secs * 1000),"
      to="arg((rules.hold_ttl_secs + 1) * 1000)," ;;
    write-then-fail) # a job meets a key of the wrong type only at the write, after others
      from="      if wrong_for_jobs then error(wrong_for_jobs) end
"
      to="" ;;
    log-after-write) # a hold writes its seat before it appends its change (a broken feed)
      from="      log('h', seat_s, user, hold_end_s)
      local record = 'H' .. user .. held_times
      put_seat(n, record)
"
      to="      local record = 'H' .. user .. held_times
      put_seat(n, record)
      log('h', seat_s, user, hold_end_s)
" ;;
    holders-read-late) # a reserve logs and writes before it reads its holders entry
      from="      held_by(user)
      log('r', seat_s, user, '0')
"
      to="      log('r', seat_s, user, '0')
" ;;
    count-last) # a reserve writes without checking the count first: adding to it fails after
      from="      if not reserved_ok then error('the event\\'s reserved count is not an integer') end
"
      to="" ;;
    broken-fails-all) # an event's broken key fails the whole enqueue run, other events' jobs too
      from="  replies[base + 1] = -1"
      to="  error(CORRUPT .. 'cannot accept jobs: ' .. why)" ;;
    tag-per-event) # a job id's tag authenticates its event only: every job of it has one tag
      from="mac.update(internal.as_bytes());"
      to="mac.update(internal.split(':').next().unwrap_or_default().as_bytes());" ;;
    wait-past-a-miss) # a lost subscription leaves the jobs accepted before it trusted to be heard
      from="        self.epoch.fetch_add(1, Ordering::AcqRel);"
      to="" ;;
    wait-past-forget) # a job whose record was forgotten is still trusted to be heard
      from="self.ticket.epoch == epoch && forgot_upto.is_none_or(|f| self.ticket.sent > f)"
      to="self.ticket.epoch == epoch && (forgot_upto.is_some() || true)" ;;
    *)
      echo "mutants.sh: mutant $1 has no mutation" >&2
      exit 2 ;;
  esac
}

repo=$PWD
work=${MUTANTS_DIR:-$repo/target/mutants}
scratch=$work/tree
logs=$work/logs
export CARGO_TARGET_DIR=$work/target
limit=${MUTANT_TIMEOUT:-1200}

baseline=1
wanted=()
for arg in "$@"; do
  case $arg in
    --list) printf '%s\n' "${MUTANTS[@]}"; exit 0 ;;
    --no-baseline) baseline=0 ;;
    -*) echo "mutants.sh: unknown option $arg" >&2; exit 2 ;;
    *) wanted+=("$arg") ;;
  esac
done

# The rows to run, in table order.
rows=()
for row in "${MUTANTS[@]}"; do
  read -r name _ <<<"$row"
  if ((${#wanted[@]} == 0)) || [[ " ${wanted[*]} " == *" $name "* ]]; then rows+=("$row"); fi
done
for name in "${wanted[@]}"; do
  printf '%s\n' "${MUTANTS[@]}" | grep -q "^$name " || { echo "mutants.sh: no mutant $name (see --list)" >&2; exit 2; }
done

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v cc >/dev/null 2>&1 || missing+=(gcc)
apt_install "${missing[@]}"
find_cargo
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }

# How many times `from` occurs in a file's text.
occurrences() {
  local text=$1 from=$2
  local rest=${text//"$from"/}
  echo $(((${#text} - ${#rest}) / ${#from}))
}

# Every mutation must apply to the working tree as it is, used or not, so that the list cannot
# rot silently: a text that moved or changed stops the run here.
for row in "${MUTANTS[@]}"; do
  read -r name file _ <<<"$row"
  mutation "$name"
  IFS= read -r -d '' text <"$file" || true
  found=$(occurrences "$text" "$from")
  if ((found != 1)); then
    echo "mutants.sh: mutant $name: the text to replace occurs $found times in $file, not once:" >&2
    printf '%s\n' "$from" >&2
    exit 2
  fi
done

# The scratch tree: the working tree's files (tracked, and untracked but not ignored). A file is
# copied only when its content differs, so the others keep their times and stay built.
mkdir -p "$scratch" "$logs"
git ls-files -co --exclude-standard | sort >"$work/files"
while IFS= read -r file; do
  [[ -f $file ]] || continue
  if ! cmp -s "$file" "$scratch/$file"; then
    mkdir -p "$(dirname "$scratch/$file")"
    cp "$file" "$scratch/$file"
  fi
done <"$work/files"
(cd "$scratch" && find . -type f | sed 's|^\./||' | sort) | comm -13 "$work/files" - |
  while IFS= read -r stale; do rm -f "$scratch/$stale"; done

# Puts a mutated file back as the working tree has it, with a new time so that cargo rebuilds.
mutated=
restore() {
  if [[ -n $mutated ]]; then
    cp "$repo/$mutated" "$scratch/$mutated"
    touch "$scratch/$mutated"
    mutated=
  fi
}
trap restore EXIT

build() {
  (cd "$scratch" && cargo test -p e2e --test it --locked --no-run) >"$1" 2>&1
}

# Runs the e2e tests selected by the filters; prints how many ran. Returns the run's status.
run_tests() {
  local log=$1; shift
  local status=0
  (cd "$scratch" && timeout --kill-after=30 "$limit" cargo test -p e2e --test it --locked -- "$@") \
    >>"$log" 2>&1 || status=$?
  grep -E '^test result:' "$log" | sed -E 's/.* ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/' |
    awk '{ n += $1 + $2 } END { print n + 0 }'
  return "$status"
}

if ((baseline)); then
  filters=()
  for row in "${rows[@]}"; do
    read -r _ _ tests <<<"$row"
    read -r -a more <<<"$tests"
    filters+=("${more[@]}")
  done
  echo "baseline: building, then running the tests of ${#rows[@]} mutant(s) unmutated"
  build "$logs/baseline.log" || { echo "mutants.sh: the unmutated tree does not build: $logs/baseline.log" >&2; exit 1; }
  if ! count=$(run_tests "$logs/baseline.log" "${filters[@]}"); then
    echo "mutants.sh: the tests fail unmutated, so no mutant can be judged: $logs/baseline.log" >&2
    exit 1
  fi
  echo "baseline: $count tests pass"
fi

printf '%-19s %-28s %-9s %6s  %s\n' mutant file result time tests
survivors=0
for row in "${rows[@]}"; do
  read -r name file tests <<<"$row"
  read -r -a filters <<<"$tests"
  mutation "$name"
  log=$logs/$name.log
  started=$SECONDS
  IFS= read -r -d '' text <"$scratch/$file" || true
  mutated=$file
  printf '%s' "${text/"$from"/"$to"}" >"$scratch/$file"
  if ! build "$log"; then
    result="NO BUILD"
    count=0
  else
    status=0
    count=$(run_tests "$log" "${filters[@]}") || status=$?
    if ((status == 124 || status == 137)); then
      result="KILLED"
      tests+=" (timed out)"
    elif ((status != 0)); then
      result="KILLED"
    elif ((count == 0)); then
      result="NO TESTS"
    else
      result="SURVIVED"
    fi
  fi
  restore
  [[ $result == KILLED ]] || survivors=$((survivors + 1))
  printf '%-19s %-28s %-9s %5ss  %s\n' "$name" "$file" "$result" $((SECONDS - started)) \
    "$tests ($count run)"
done

if ((survivors)); then
  echo "$survivors of ${#rows[@]} mutant(s) not killed; logs in $logs" >&2
  exit 1
fi
echo "all ${#rows[@]} mutant(s) killed"

# bash completion for lmdisc(1)                             -*- shell-script -*-
# Installed as /usr/share/bash-completion/completions/lmdisc (loaded on
# demand by the bash-completion package), or: source completions/lmdisc.bash
# It needs nothing of bash-completion: complete, compgen and COMP_* only.
# tests/unit/test_completions.lua holds it to the commands' option tables.

_lmdisc_commands="agent announce discover peers watch drain check test keygen certify"

# every option of a command, short and long
_lmdisc_options()
{
    case $1 in
    agent) echo "-c --config -h --help" ;;
    announce) echo "-n --name -t --type -x --txt --ttl -d --domain -k --key -s --server -l --lease --host -h --help" ;;
    discover) echo "-T --timeout -j --json -t --type -N --no-agent -d --domain -s --server -k --key -h --help" ;;
    peers | watch) echo "-j --json -s --socket -h --help" ;;
    drain) echo "-g --grace -c --cancel -s --socket -h --help" ;;
    check) echo "-u --user -t --timeout -h --help" ;;
    test) echo "--timeout -h --help" ;;
    keygen) echo "-h --help" ;;
    certify) echo "-k --fleet-key -N --name -s --serial -r --revoke -d --days -n --not-before -o --out -c --check -p --fleet-pub -a --at -h --help" ;;
    esac
}

# options that take a value: what the value is (file, user, type, level,
# or none: a number, a name, an address)
_lmdisc_value()
{
    case $1:$2 in
    agent:-c | agent:--config | announce:-k | announce:--key | discover:-k | discover:--key | \
        peers:-s | peers:--socket | watch:-s | watch:--socket | drain:-s | drain:--socket | \
        certify:-k | certify:--fleet-key | certify:-o | certify:--out | certify:-p | certify:--fleet-pub | \
        certify:-r | certify:--revoke)
        echo file ;;
    check:-u | check:--user) echo user ;;
    announce:-t | announce:--type | discover:-t | discover:--type) echo type ;;
    announce:-n | announce:--name | announce:-x | announce:--txt | announce:--ttl | announce:-d | \
        announce:--domain | announce:-s | announce:--server | announce:-l | announce:--lease | announce:--host | \
        discover:-T | discover:--timeout | discover:-d | discover:--domain | discover:-s | discover:--server | \
        drain:-g | drain:--grace | test:--timeout | check:-t | check:--timeout | certify:-d | certify:--days | certify:-n | \
        certify:--not-before | certify:-a | certify:--at | certify:-N | certify:--name | certify:-s | \
        certify:--serial)
        echo none ;;
    esac
}

_lmdisc_files()
{
    compopt -o filenames 2>/dev/null
    local IFS=$'\n'
    COMPREPLY=($(compgen -f -- "$1"))
}

_lmdisc()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd= i
    COMPREPLY=()
    # the command: the first word that is not a global option (or its value)
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        --log-level) ((i++)) ;;
        -*) ;;
        *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    if [[ -z $cmd ]]; then
        if [[ $prev == --log-level ]]; then
            COMPREPLY=($(compgen -W "DEBUG INFO WARNING ERROR" -- "$cur"))
        elif [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--log-level -h --help -V --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$_lmdisc_commands" -- "$cur"))
        fi
        return 0
    fi
    if ((COMP_CWORD - 1 > i)); then
        case $(_lmdisc_value "$cmd" "$prev") in
        file) _lmdisc_files "$cur"; return 0 ;;
        user) COMPREPLY=($(compgen -u -- "$cur")); return 0 ;;
        type) COMPREPLY=($(compgen -W "_lmserv._tcp" -- "$cur")); return 0 ;;
        none) return 0 ;;
        esac
    fi
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_lmdisc_options "$cmd")" -- "$cur"))
        return 0
    fi
    # the operands: files for those that take them
    case $cmd in
    check | test | keygen | certify) _lmdisc_files "$cur" ;;
    esac
    return 0
}
complete -F _lmdisc lmdisc

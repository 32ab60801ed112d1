# bash completion for taskmasterctl: options, actions, then what each action takes (process and
# program names asked of the running daemon, signals, stdout|stderr). taskmasterctl itself
# decides (`taskmasterctl --complete -- WORDS… CURRENT`); it prints nothing when no daemon
# answers, and never asks for a password.

_taskmasterctl() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        -c | --configuration | -s | --serverurl)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
        -u | --username)
            mapfile -t COMPREPLY < <(compgen -u -- "$cur")
            return
            ;;
    esac
    # The words up to the cursor, split on blanks only: bash splits web:0 at its colon.
    local line=${COMP_LINE-${COMP_WORDS[*]:0:COMP_CWORD+1}}
    line=${line:0:${COMP_POINT-${#line}}}
    local -a words
    read -ra words <<<"$line"
    [[ -z $line || $line == *[[:blank:]] ]] && words+=("")
    local cmd=${words[0]/#\~/$HOME}
    mapfile -t COMPREPLY < <("$cmd" --complete -- "${words[@]:1}" 2>/dev/null)
    # bash replaces only what follows the last colon of the word: drop what precedes it.
    local word=${words[${#words[@]}-1]}
    if [[ $word == *:* && $COMP_WORDBREAKS == *:* ]]; then
        local prefix=${word%"${word##*:}"} i
        for i in "${!COMPREPLY[@]}"; do
            COMPREPLY[i]=${COMPREPLY[i]#"$prefix"}
        done
    fi
}
complete -F _taskmasterctl taskmasterctl

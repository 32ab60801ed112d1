# bash completion for taskmasterd.

_taskmasterd() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    case $prev in
        -c | --configuration)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return
            ;;
    esac
    local opts="-c --configuration -n --nodaemon -d --daemon -t --check-config --hash-password -h --help -V --version"
    mapfile -t COMPREPLY < <(compgen -W "$opts" -- "$cur")
}
complete -F _taskmasterd taskmasterd

# fish completion for taskmasterctl: options, actions, then what each action takes (process and
# program names asked of the running daemon, signals, stdout|stderr). taskmasterctl itself
# decides (`taskmasterctl --complete -- WORDS… CURRENT`); it prints nothing when no daemon
# answers, and never asks for a password.

function __taskmasterctl_complete
    set -l tokens (commandline -opc)
    set -l cmd $tokens[1]
    set -e tokens[1]
    type -q -- $cmd; or return
    set -l cur (commandline -ct)
    $cmd --complete -- $tokens "$cur" 2>/dev/null
end

function __taskmasterctl_option_value
    set -l tokens (commandline -opc)
    contains -- $tokens[-1] -c --configuration -s --serverurl -u --username
end

complete -c taskmasterctl -f -n 'not __taskmasterctl_option_value' -a '(__taskmasterctl_complete)'
complete -c taskmasterctl -s c -l configuration -r -F -d 'Config file'
complete -c taskmasterctl -s s -l serverurl -r -F -d 'Control socket (a path or unix:///path)'
complete -c taskmasterctl -s u -l username -x -a '(__fish_complete_users)' -d 'User name for socket.auth'
complete -c taskmasterctl -s i -l interactive -d 'Start the shell after the action'
complete -c taskmasterctl -s h -l help -d 'Print help'
complete -c taskmasterctl -s V -l version -d 'Print version'

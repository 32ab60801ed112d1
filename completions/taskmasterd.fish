# fish completion for taskmasterd.

complete -c taskmasterd -f
complete -c taskmasterd -s c -l configuration -r -F -d 'Config file'
complete -c taskmasterd -s n -l nodaemon -d 'Stay in the foreground'
complete -c taskmasterd -s d -l daemon -d 'Detach from the terminal'
complete -c taskmasterd -s t -l check-config -d 'Check the config and exit'
complete -c taskmasterd -l hash-password -d 'Print the argon2 hash of a password for socket.auth'
complete -c taskmasterd -s h -l help -d 'Print help'
complete -c taskmasterd -s V -l version -d 'Print version'

# bash completion for scope(8)
_scope() {
  local cur prev words cword
  _init_completion || return
  local top="registry network token peer join daemon status ping netcheck leave check"
  case ${words[1]} in
    network) [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "create list" -- "$cur")) && return ;;
    token) [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "create" -- "$cur")) && return ;;
    peer) [[ $cword -eq 2 ]] && COMPREPLY=($(compgen -W "list remove" -- "$cur")) && return ;;
  esac
  case $prev in
    --config | -c | --token-file | --data) _filedir && return ;;
    --backend) COMPREPLY=($(compgen -W "auto wg networkmanager networkd" -- "$cur")) && return ;;
    --topology) COMPREPLY=($(compgen -W "mesh tree" -- "$cur")) && return ;;
    --log-level) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")) && return ;;
  esac
  if [[ $cword -eq 1 ]]; then
    COMPREPLY=($(compgen -W "$top --help --version" -- "$cur"))
  elif [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "--help --json --config --network --log-level" -- "$cur"))
  fi
}
complete -F _scope scope

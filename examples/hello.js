// The hello world of roma: `roma run examples/hello.js --input '"Foobar"'`.
function Handler(input) {
  return "Hello world! " + JSON.stringify(input);
}

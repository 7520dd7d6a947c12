// JS calling host functions (user-defined function bindings). The host registers them in its
// Config; crates/roma/examples/udf.rs loads this file and calls Handler:
//
//   cargo run -p roma --example udf        # (after `cargo build -p roma-worker`)
//
// Each call leaves the sandbox, runs in the host with the request's metadata (here, the
// tenant), and returns. The metadata itself never enters the sandbox.
async function Handler(name, fruits) {
  // A string in, a string out.
  const greeting = cool_function(name);
  // A dotted name is a nested object; an array of strings in, a JS Map out.
  const prices = shop.prices(fruits);
  let total = 0;
  for (const [, price] of prices) total += Number(price);
  console.log(`priced ${prices.size} fruits`);
  // An asynchronous host function returns a Promise; several run at once.
  const stock = await Promise.all(fruits.map((fruit) => shop.stock(fruit)));
  // A host error arrives as a thrown Error.
  let refused = null;
  try {
    shop.prices(["durian"]);
  } catch (e) {
    refused = e.message;
  }
  return { greeting, prices: Object.fromEntries(prices), total, stock, refused };
}
